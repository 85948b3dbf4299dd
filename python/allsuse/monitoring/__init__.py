"""What watches the book between decisions (docs/monitoring.md): factor crowding, and more to come."""

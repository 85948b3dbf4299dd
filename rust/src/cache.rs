//! placeholder module, filled in by its owner

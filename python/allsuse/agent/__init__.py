"""The ALL-USE conversational agent (issue 11): understanding (nlu, entities), dialogue, memory and answers."""

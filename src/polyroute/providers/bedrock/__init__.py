"""The adapter for Amazon Bedrock's Converse API: encode, decode, event-stream reading, SigV4, I/O."""

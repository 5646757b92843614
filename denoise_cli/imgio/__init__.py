"""Image input and output: decoding, encoding, streams, metadata, atomic writes, folders."""

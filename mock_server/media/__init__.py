"""The mock's media: ``video`` (the playable MP4s it serves) and ``h264`` (the encoder behind
them)."""

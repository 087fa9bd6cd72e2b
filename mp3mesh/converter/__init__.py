"""converter: consumes `video`, extracts the audio to MP3 with ffmpeg, publishes to `mp3`."""

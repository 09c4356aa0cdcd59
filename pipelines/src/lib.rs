//! GStreamer recording pipelines: RTP packets in, media files out.

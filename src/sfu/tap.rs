//! Interceptors that act only on what the connection reads, in place, and pass every packet
//! on in order: [`ReadTap`] is the webrtc-rs interceptor around such a [`ReadRewrite`].

use rtc::interceptor::{Interceptor, StreamInfo, TaggedPacket};
use rtc::sansio::Protocol;
use std::collections::VecDeque;
use std::time::Instant;

/// What a read-side interceptor does to each packet it reads, and which remote streams it
/// follows (none by default).
pub(super) trait ReadRewrite: Send + Sync {
    fn rewrite(&mut self, msg: &mut TaggedPacket);

    fn bind_remote_stream(&mut self, _info: &StreamInfo) {}

    fn unbind_remote_stream(&mut self, _info: &StreamInfo) {}
}

/// The interceptor around a [`ReadRewrite`]: reads are rewritten, writes pass untouched.
#[derive(Default)]
pub(super) struct ReadTap<R> {
    rewrite: R,
    read_queue: VecDeque<TaggedPacket>,
    write_queue: VecDeque<TaggedPacket>,
}

impl<R: ReadRewrite> Protocol<TaggedPacket, TaggedPacket, ()> for ReadTap<R> {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = webrtc::error::Error;
    type Time = Instant;

    fn handle_read(&mut self, mut msg: TaggedPacket) -> Result<(), Self::Error> {
        self.rewrite.rewrite(&mut msg);
        self.read_queue.push_back(msg);
        Ok(())
    }

    fn poll_read(&mut self) -> Option<TaggedPacket> {
        self.read_queue.pop_front()
    }

    fn handle_write(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        self.write_queue.push_back(msg);
        Ok(())
    }

    fn poll_write(&mut self) -> Option<TaggedPacket> {
        self.write_queue.pop_front()
    }
}

impl<R: ReadRewrite> Interceptor for ReadTap<R> {
    fn bind_local_stream(&mut self, _info: &StreamInfo) {}

    fn unbind_local_stream(&mut self, _info: &StreamInfo) {}

    fn bind_remote_stream(&mut self, info: &StreamInfo) {
        self.rewrite.bind_remote_stream(info);
    }

    fn unbind_remote_stream(&mut self, info: &StreamInfo) {
        self.rewrite.unbind_remote_stream(info);
    }
}

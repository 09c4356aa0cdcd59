//! GStreamer ends for encrypted files: a sink that a muxer writes to as it would to a
//! seekable `filesink`, and a random-access source that a demuxer reads the plaintext from.

use super::{EncryptedReader, EncryptedWriter, Keyring};
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use std::path::Path;
use std::sync::{Arc, Mutex};

/// Bytes the source pushes per buffer when the demuxer does not say how many it wants.
const READ_LEN: usize = 64 * 1024;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A sink writing what reaches it into a new encrypted file at `path`, sealed with the
/// keyring's current key. Like a seekable, unbuffered `filesink`: it answers the muxer's
/// seeking query, follows its byte segments (a muxer seeks back to patch headers by sending
/// a new segment) and writes each buffer at once. A write error is posted as a
/// `ResourceError::Write` naming the file, as `filesink` does.
pub fn encrypted_sink(path: &Path, keyring: &Keyring) -> std::io::Result<gst::Element> {
    let writer = Arc::new(Mutex::new(EncryptedWriter::create(path, keyring)?));
    let sink = gst::ElementFactory::make("fakesink")
        .property("async", false)
        .property("sync", false)
        .build()
        .map_err(std::io::Error::other)?;
    let pad = sink.static_pad("sink").expect("fakesink has a sink pad");
    let element = sink.downgrade();
    let path = path.to_owned();
    let types = gst::PadProbeType::BUFFER
        | gst::PadProbeType::BUFFER_LIST
        | gst::PadProbeType::EVENT_DOWNSTREAM
        | gst::PadProbeType::QUERY_DOWNSTREAM;
    pad.add_probe(types, move |_, info| {
        let written = match &mut info.data {
            Some(gst::PadProbeData::Query(query)) => {
                return match query.view_mut() {
                    gst::QueryViewMut::Seeking(q) if q.format() == gst::Format::Bytes => {
                        q.set(true, gst::format::Bytes::ZERO, gst::format::Bytes::NONE);
                        gst::PadProbeReturn::Handled
                    }
                    _ => gst::PadProbeReturn::Ok,
                };
            }
            Some(gst::PadProbeData::Event(event)) => {
                if let gst::EventView::Segment(s) = event.view() {
                    if let Some(segment) = s.segment().downcast_ref::<gst::format::Bytes>() {
                        let start = segment.start().map_or(0, |b| *b);
                        lock(&writer).seek(start);
                    }
                }
                return gst::PadProbeReturn::Ok;
            }
            Some(gst::PadProbeData::Buffer(buffer)) => write(&writer, buffer),
            Some(gst::PadProbeData::BufferList(list)) => {
                list.iter().try_for_each(|buffer| write(&writer, buffer))
            }
            _ => return gst::PadProbeReturn::Ok,
        };
        drop(info.data.take());
        if let Err(e) = written {
            if let Some(sink) = element.upgrade() {
                gst::element_error!(
                    sink,
                    gst::ResourceError::Write,
                    ("Could not write to file \"{}\".", path.display()),
                    ["{e}"]
                );
            }
            info.flow_res = Err(gst::FlowError::Error);
        }
        gst::PadProbeReturn::Handled
    });
    Ok(sink)
}

fn write(writer: &Mutex<EncryptedWriter>, buffer: &gst::BufferRef) -> std::io::Result<()> {
    let map = buffer
        .map_readable()
        .map_err(|_| std::io::Error::other("unreadable buffer"))?;
    lock(writer).write(map.as_slice())
}

/// A random-access `appsrc` serving the plaintext of `reader`: demuxers can seek in it as
/// in a `filesrc`. A chunk that fails authentication ends the stream with an error naming
/// it; the torn tail of a crashed file is already left out of the reader's length.
pub fn decrypting_source(reader: EncryptedReader) -> gst::Element {
    let src = gst_app::AppSrc::builder()
        .stream_type(gst_app::AppStreamType::RandomAccess)
        .format(gst::Format::Bytes)
        .size(i64::try_from(reader.len()).unwrap_or(i64::MAX))
        .build();
    let state = Arc::new(Mutex::new((reader, 0u64)));
    let seek = state.clone();
    src.set_callbacks(
        gst_app::AppSrcCallbacks::builder()
            .need_data(move |src, wanted| {
                let mut guard = lock(&state);
                let (reader, position) = &mut *guard;
                let want = match wanted {
                    0 => READ_LEN,
                    n => n as usize,
                };
                let mut data = vec![0; want.min(4 * 1024 * 1024)];
                match reader.read_at(*position, &mut data) {
                    Ok(0) => {
                        let _ = src.end_of_stream();
                    }
                    Ok(n) => {
                        data.truncate(n);
                        let mut buffer = gst::Buffer::from_mut_slice(data);
                        buffer
                            .get_mut()
                            .expect("a new buffer is writable")
                            .set_offset(*position);
                        *position += n as u64;
                        let _ = src.push_buffer(buffer);
                    }
                    Err(e) => {
                        gst::element_error!(src, gst::ResourceError::Read, ("{}", e));
                        let _ = src.end_of_stream();
                    }
                }
            })
            .seek_data(move |_, offset| {
                lock(&seek).1 = offset;
                true
            })
            .build(),
    );
    src.upcast()
}

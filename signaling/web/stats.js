// WebRTC statistics of both connections (read by the browser tests through their hooks).
import { S } from './state.js';

export async function inboundStats() {
  const out = {};
  if (!S.sub || S.sub.connectionState === 'closed') return out;
  for (const t of S.sub.getTransceivers()) {
    const track = t.receiver && t.receiver.track;
    const identity = track && S.trackOwner.get(track.id);
    if (!identity || t.currentDirection === 'inactive' || t.currentDirection === 'stopped') continue;
    const entry = (out[identity] ??= {
      identity,
      name: S.participants.get(identity)?.name ?? null,
      videoFramesDecoded: 0,
      videoFramesReceived: 0,
      videoBytesReceived: 0,
      videoPacketsReceived: 0,
      videoPacketsLost: 0,
      frameWidth: 0,
      frameHeight: 0,
      framesPerSecond: 0,
      audioBytesReceived: 0,
      audioPacketsReceived: 0,
      audioPacketsLost: 0,
      audioLevel: 0,
      codecs: [],
    });
    const report = await t.receiver.getStats();
    const codecs = new Map();
    report.forEach((s) => s.type === 'codec' && codecs.set(s.id, s.mimeType));
    report.forEach((s) => {
      if (s.type !== 'inbound-rtp') return;
      if (codecs.get(s.codecId)) entry.codecs.push(codecs.get(s.codecId));
      if (s.kind === 'video') {
        entry.videoFramesDecoded += s.framesDecoded || 0;
        entry.videoFramesReceived += s.framesReceived || 0;
        entry.videoBytesReceived += s.bytesReceived || 0;
        entry.videoPacketsReceived += s.packetsReceived || 0;
        entry.videoPacketsLost += s.packetsLost || 0;
        entry.frameWidth = Math.max(entry.frameWidth, s.frameWidth || 0);
        entry.frameHeight = Math.max(entry.frameHeight, s.frameHeight || 0);
        entry.framesPerSecond = Math.max(entry.framesPerSecond, s.framesPerSecond || 0);
      } else if (s.kind === 'audio') {
        entry.audioBytesReceived += s.bytesReceived || 0;
        entry.audioPacketsReceived += s.packetsReceived || 0;
        entry.audioPacketsLost += s.packetsLost || 0;
        entry.audioLevel = Math.max(entry.audioLevel, s.audioLevel || 0);
      }
    });
  }
  return out;
}

export async function outboundStats() {
  const out = { audioBytesSent: 0, videoBytesSent: 0, framesEncoded: 0, frameWidth: 0, frameHeight: 0 };
  if (!S.pub || S.pub.connectionState === 'closed') return out;
  (await S.pub.getStats()).forEach((s) => {
    if (s.type !== 'outbound-rtp') return;
    if (s.kind === 'audio') out.audioBytesSent += s.bytesSent || 0;
    if (s.kind === 'video') {
      out.videoBytesSent += s.bytesSent || 0;
      out.framesEncoded += s.framesEncoded || 0;
      out.frameWidth = Math.max(out.frameWidth, s.frameWidth || 0);
      out.frameHeight = Math.max(out.frameHeight, s.frameHeight || 0);
    }
  });
  return out;
}

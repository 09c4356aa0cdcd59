//! The recorder's control thread: owns the pipeline, applies commands, turns bus messages and
//! pad-probe notifications (sent from streaming threads, nothing else done there) into events.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use tokio::sync::oneshot;

use crate::build::{self, BuiltOutput};
use crate::events::{self, EventSender, EventStream, RecorderEvent};
use crate::input::{Timeline, TrackInput};
use crate::plan::{self, BranchPlan, OutputPlan, PlanContext, Target, TILE_HOLD_NS};
use crate::recorder::RecorderError;
use crate::shared::{lock, Shared};
use crate::spec::{Mode, RecordingSpec, TrackKind, TrackSpec};
use crate::stats::{Outcome, OutputFile, RecorderState};

/// Reply channel of a command.
pub(crate) type Reply<T> = oneshot::Sender<Result<T, RecorderError>>;

/// How long a removed input may take to drain before it is torn down anyway.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

pub(crate) enum Command {
    Add(TrackSpec, Reply<TrackInput>),
    Remove(String, Reply<()>),
    Pause(Reply<()>),
    Resume(Reply<()>),
    Speaker(Option<String>, Reply<()>),
    Stop(Duration, Option<Reply<Outcome>>),
    Cancel(Reply<()>),
}

pub(crate) enum Msg {
    Cmd(Command),
    Bus(gst::Message),
    /// End-of-stream reached the end of an input's branch.
    Drained(String),
    /// End-of-stream reached a tracks-mode file sink.
    OutputDone(String),
    /// A depayloader asked upstream for a keyframe.
    Keyframe(String),
}

struct LiveInput {
    input: TrackInput,
    elements: Vec<gst::Element>,
    target_pad: gst::Pad,
    output_key: Option<String>,
    removing: Arc<AtomicBool>,
    drain_deadline: Option<Instant>,
}

struct LiveOutput {
    plan: OutputPlan,
    built: BuiltOutput,
    origin: gst::ClockTime,
    started: Arc<AtomicBool>,
}

struct Stopping {
    deadline: Instant,
    reply: Option<Reply<Outcome>>,
}

struct Control {
    spec: RecordingSpec,
    pipeline: gst::Pipeline,
    shared: Arc<Shared>,
    events: EventSender,
    tx: mpsc::Sender<Msg>,
    ctx: PlanContext,
    inputs: Vec<LiveInput>,
    retired: Vec<TrackInput>,
    outputs: Vec<LiveOutput>,
    done_files: Vec<OutputFile>,
    mixers: Vec<(TrackKind, gst::Element)>,
    holds: Vec<(gst::Pad, gst::PadProbeId)>,
    stopping: Option<Stopping>,
    finished: bool,
}

type Started = (mpsc::Sender<Msg>, Arc<Shared>, EventStream);

/// Thread entry: builds and starts the pipeline, reports readiness, then serves messages.
pub(crate) fn run(spec: RecordingSpec, ready: oneshot::Sender<Result<Started, RecorderError>>) {
    let (tx, rx) = mpsc::channel();
    match Control::start(spec, tx.clone()) {
        Ok((control, stream)) => {
            let shared = control.shared.clone();
            if ready.send(Ok((tx, shared, stream))).is_ok() {
                serve_guarded(control, rx);
            } else {
                let _ = control.pipeline.set_state(gst::State::Null);
            }
        }
        Err(e) => {
            let _ = ready.send(Err(e));
        }
    }
}

/// Serves until finished; a bug that panics here tears the pipeline down and is reported as
/// an error event instead of leaving a zombie recorder.
fn serve_guarded(control: Control, rx: mpsc::Receiver<Msg>) {
    let (pipeline, shared, events) = (
        control.pipeline.clone(),
        control.shared.clone(),
        control.events.clone(),
    );
    let served = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| control.serve(rx)));
    if let Err(panic) = served {
        let what = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        let message = format!("recorder control thread panicked: {what}");
        let _ = pipeline.set_state(gst::State::Null);
        shared.timeline.set_state(RecorderState::Finished);
        shared.note_error(message.clone());
        events.emit(RecorderEvent::Error { message });
        events.emit(RecorderEvent::Finished { outcome: None });
    }
}

fn gst_err(context: &str) -> impl FnOnce(gst::StateChangeError) -> RecorderError + '_ {
    move |e| RecorderError::Gstreamer(format!("{context}: {e}"))
}

impl Control {
    fn start(
        spec: RecordingSpec,
        tx: mpsc::Sender<Msg>,
    ) -> Result<(Control, EventStream), RecorderError> {
        gst::init().map_err(|e| RecorderError::Gstreamer(e.to_string()))?;
        check_dir(&spec)?;
        let pipeline = gst::Pipeline::new();
        let clock = gst::SystemClock::obtain();
        pipeline.use_clock(Some(&clock));
        let bus_tx = tx.clone();
        pipeline
            .bus()
            .expect("pipeline has a bus")
            .set_sync_handler(move |_, msg| {
                use gst::MessageType as T;
                if matches!(msg.type_(), T::Eos | T::Error | T::Warning) {
                    let _ = bus_tx.send(Msg::Bus(msg.clone()));
                }
                gst::BusSyncReply::Drop
            });
        let timeline = Arc::new(Timeline::new(pipeline.clone(), clock));
        let shared = Arc::new(Shared {
            timeline,
            inputs: Mutex::new(Vec::new()),
            files: Mutex::new(Vec::new()),
            errors: Mutex::new(Vec::new()),
            paused_at: Mutex::new(None),
            media: Mutex::new(Vec::new()),
        });
        let (events, stream) = events::channel();
        let mut control = Control {
            spec,
            pipeline,
            shared,
            events,
            tx,
            ctx: PlanContext::default(),
            inputs: Vec::new(),
            retired: Vec::new(),
            outputs: Vec::new(),
            done_files: Vec::new(),
            mixers: Vec::new(),
            holds: Vec::new(),
            stopping: None,
            finished: false,
        };
        if let Err(e) = control.build_core() {
            let _ = control.pipeline.set_state(gst::State::Null);
            return Err(e);
        }
        Ok((control, stream))
    }

    fn build_core(&mut self) -> Result<(), RecorderError> {
        let plan = plan::plan(&self.spec, &[], &self.ctx);
        let core = build::materialize(&self.pipeline, &plan)?;
        for ((_, built), out) in core.outputs.into_iter().zip(plan.outputs) {
            self.register_output(out, built, gst::ClockTime::ZERO);
        }
        self.mixers = core.mixers;
        self.pipeline
            .set_state(gst::State::Playing)
            .map_err(gst_err("start pipeline"))?;
        self.shared.timeline.set_state(RecorderState::Recording);
        Ok(())
    }

    fn serve(mut self, rx: mpsc::Receiver<Msg>) {
        while !self.finished {
            match rx.recv_timeout(self.next_wakeup()) {
                Ok(msg) => self.handle(msg),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            self.check_deadlines();
        }
        let _ = self.pipeline.set_state(gst::State::Null);
    }

    fn next_wakeup(&self) -> Duration {
        let deadlines = self.inputs.iter().filter_map(|i| i.drain_deadline);
        let stop = self.stopping.as_ref().map(|s| s.deadline);
        deadlines
            .chain(stop)
            .min()
            .map(|d| d.saturating_duration_since(Instant::now()))
            .unwrap_or(Duration::from_secs(3600))
    }

    fn handle(&mut self, msg: Msg) {
        match msg {
            Msg::Cmd(cmd) => self.command(cmd),
            Msg::Bus(m) => self.bus(&m),
            Msg::Drained(id) => self.drained(&id),
            Msg::OutputDone(key) => self.output_done(&key),
            Msg::Keyframe(id) => self.keyframe(&id),
        }
    }

    fn command(&mut self, cmd: Command) {
        match cmd {
            Command::Add(spec, r) => reply(r, self.add_input(spec)),
            Command::Remove(id, r) => reply(r, self.remove_input(&id)),
            Command::Pause(r) => reply(r, self.pause()),
            Command::Resume(r) => reply(r, self.resume()),
            Command::Speaker(p, r) => reply(r, self.set_speaker(p)),
            Command::Stop(timeout, r) => self.stop(timeout, r),
            Command::Cancel(r) => reply(r, self.cancel()),
        }
    }

    fn require_active(&self) -> Result<(), RecorderError> {
        match self.shared.timeline.state() {
            RecorderState::Recording | RecorderState::Paused => Ok(()),
            s => Err(RecorderError::State(s)),
        }
    }

    fn add_input(&mut self, spec: TrackSpec) -> Result<TrackInput, RecorderError> {
        self.require_active()?;
        if self.inputs.iter().any(|i| i.input.id() == spec.id) {
            return Err(RecorderError::DuplicateInput(spec.id));
        }
        if !plan::accepts(&self.spec, &spec) {
            return Err(RecorderError::NotRecorded(spec.id));
        }
        let output_key = self.ensure_output(&spec)?;
        let mut specs: Vec<TrackSpec> =
            self.inputs.iter().map(|i| i.input.spec().clone()).collect();
        specs.push(spec);
        let plan = plan::plan(&self.spec, &specs, &self.ctx);
        let branch = plan.branches.last().expect("the new input is planned");
        let spec = specs.pop().expect("the new input");
        let live = self.add_branch(spec, branch, output_key)?;
        let input = live.input.clone();
        lock(&self.shared.inputs).push(input.clone());
        self.inputs.push(live);
        self.relayout();
        if input.spec().kind == TrackKind::Video {
            self.keyframe(input.id());
        }
        Ok(input)
    }

    /// Tracks mode: the key of the participant's open file, opening one if needed.
    fn ensure_output(&mut self, spec: &TrackSpec) -> Result<Option<String>, RecorderError> {
        if self.spec.mode() != Mode::Tracks {
            return Ok(None);
        }
        let who = spec.participant.as_str();
        let generation = self.generation_for(who);
        let key = plan::output_key(who, generation);
        if !self.outputs.iter().any(|o| o.plan.key == key) {
            self.open_output(who, generation)?;
        }
        Ok(Some(key))
    }

    /// The participant's file generation to use: a new one if the current file already started
    /// writing (muxers take no new streams after their header) or was finished.
    fn generation_for(&mut self, who: &str) -> u32 {
        let current = self.ctx.file_generation.get(who).copied().unwrap_or(0);
        let key = plan::output_key(who, current);
        let used = match self.outputs.iter().find(|o| o.plan.key == key) {
            Some(open) => open.started.load(Ordering::Acquire),
            None => self
                .done_files
                .iter()
                .any(|f| f.participant.as_deref() == Some(who)),
        };
        if !used {
            return current;
        }
        self.ctx
            .file_generation
            .insert(who.to_string(), current + 1);
        current + 1
    }

    fn open_output(&mut self, who: &str, generation: u32) -> Result<(), RecorderError> {
        let out = plan::participant_output(&self.spec, who, generation);
        let built = build::add_output(&self.pipeline, &out)?;
        self.watch_output(&out.key, &built);
        for e in [&built.sink, &built.muxer] {
            e.sync_state_with_parent()
                .map_err(|e| RecorderError::Gstreamer(e.to_string()))?;
        }
        self.register_output(out, built, self.shared.timeline.now());
        Ok(())
    }

    /// EOS at a tracks-mode file sink (its last input left) finishes that file.
    fn watch_output(&self, key: &str, built: &BuiltOutput) {
        let sink_pad = built
            .sink
            .static_pad("sink")
            .expect("filesink has a sink pad");
        let tx = self.tx.clone();
        let key = key.to_string();
        sink_pad.add_probe(gst::PadProbeType::EVENT_DOWNSTREAM, move |_, info| {
            if info
                .event()
                .is_some_and(|e| e.type_() == gst::EventType::Eos)
            {
                let _ = tx.send(Msg::OutputDone(key.clone()));
            }
            gst::PadProbeReturn::Ok
        });
    }

    /// Tracks the output; a probe marks it started at its first muxed buffer.
    fn register_output(&mut self, plan: OutputPlan, built: BuiltOutput, origin: gst::ClockTime) {
        let started = Arc::new(AtomicBool::new(false));
        let flag = started.clone();
        if let Some(pad) = built.muxer.static_pad("src") {
            pad.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
                flag.store(true, Ordering::Release);
                gst::PadProbeReturn::Remove
            });
        }
        lock(&self.shared.media)
            .push((Duration::from_nanos(origin.nseconds()), built.span.clone()));
        lock(&self.shared.files).push(OutputFile {
            path: plan.part_path.clone(),
            participant: plan.participant.clone(),
            start_offset: Duration::from_nanos(origin.nseconds()),
            bytes: 0,
        });
        self.outputs.push(LiveOutput {
            plan,
            built,
            origin,
            started,
        });
    }

    fn add_branch(
        &mut self,
        spec: TrackSpec,
        branch: &BranchPlan,
        output_key: Option<String>,
    ) -> Result<LiveInput, RecorderError> {
        let elements = build::add_chain(&self.pipeline, &branch.chain.elements)?;
        let target_pad = match self.link_target(branch, &elements) {
            Ok(pad) => pad,
            Err(e) => {
                self.discard(&elements);
                return Err(e);
            }
        };
        let id = branch.input.clone();
        let removing = Arc::new(AtomicBool::new(false));
        self.probe_keyframes(&elements[branch.depay_index], &id);
        self.probe_drain(elements.last().expect("branch"), &id, removing.clone());
        let appsrc = elements[0]
            .clone()
            .downcast::<gst_app::AppSrc>()
            .expect("branch starts with an appsrc");
        Ok(LiveInput {
            input: TrackInput::new(
                spec,
                appsrc,
                elements[branch.jitterbuffer_index].clone(),
                self.shared.timeline.clone(),
            ),
            elements,
            target_pad,
            output_key,
            removing,
            drain_deadline: None,
        })
    }

    /// Links the branch end to its mixer or muxer and starts the branch (downstream first).
    fn link_target(
        &self,
        branch: &BranchPlan,
        elements: &[gst::Element],
    ) -> Result<gst::Pad, RecorderError> {
        let last = elements.last().expect("branch has elements");
        let pad = match &branch.chain.target {
            Target::Mixer(kind) => {
                let mixer = self.mixer(*kind).expect("composite has the mixer");
                let pad = build::link_request(last, &mixer, "sink_%u")?;
                if *kind == TrackKind::Video {
                    pad.set_property("zorder", 1u32);
                    pad.set_property_from_str("sizing-policy", "keep-aspect-ratio");
                    pad.set_property("max-last-buffer-repeat", TILE_HOLD_NS);
                    // At stop every input ends before the black background does; without
                    // this the last frames drew the tiles of ended inputs as empty.
                    pad.set_property("repeat-after-eos", true);
                }
                pad
            }
            Target::Output(key) => {
                let out = self
                    .outputs
                    .iter()
                    .find(|o| &o.plan.key == key)
                    .expect("output exists");
                let template = build::mux_template(branch.chain.kind);
                let pad = build::link_request(last, &out.built.muxer, template)?;
                pad.set_offset(-(out.origin.nseconds() as i64));
                pad
            }
        };
        for e in elements.iter().rev() {
            e.sync_state_with_parent()
                .map_err(|e| RecorderError::Gstreamer(e.to_string()))?;
        }
        Ok(pad)
    }

    /// Removes elements of a branch that could not be started.
    fn discard(&self, elements: &[gst::Element]) {
        for e in elements {
            let _ = e.set_state(gst::State::Null);
        }
        let _ = self.pipeline.remove_many(elements);
    }

    fn probe_keyframes(&self, depay: &gst::Element, id: &str) {
        let tx = self.tx.clone();
        let id = id.to_string();
        let pad = depay
            .static_pad("sink")
            .expect("depayloader has a sink pad");
        pad.add_probe(gst::PadProbeType::EVENT_UPSTREAM, move |_, info| {
            let is_fku = info
                .event()
                .and_then(|e| e.structure())
                .is_some_and(|s| s.name() == "GstForceKeyUnit");
            if is_fku {
                let _ = tx.send(Msg::Keyframe(id.clone()));
            }
            gst::PadProbeReturn::Ok
        });
    }

    /// EOS at the branch end: reported; swallowed when the input is being removed from a mixer
    /// (the mixer must keep running), passed on otherwise (muxers and stop need it).
    fn probe_drain(&self, last: &gst::Element, id: &str, removing: Arc<AtomicBool>) {
        let tx = self.tx.clone();
        let id = id.to_string();
        let to_mixer = self.spec.mode() == Mode::Composite;
        let pad = last.static_pad("src").expect("branch end has a src pad");
        pad.add_probe(gst::PadProbeType::EVENT_DOWNSTREAM, move |_, info| {
            if !info
                .event()
                .is_some_and(|e| e.type_() == gst::EventType::Eos)
            {
                return gst::PadProbeReturn::Ok;
            }
            let _ = tx.send(Msg::Drained(id.clone()));
            if to_mixer && removing.load(Ordering::Acquire) {
                build::discard(info)
            } else {
                gst::PadProbeReturn::Ok
            }
        });
    }

    fn mixer(&self, kind: TrackKind) -> Option<gst::Element> {
        self.mixers
            .iter()
            .find(|(k, _)| *k == kind)
            .map(|(_, m)| m.clone())
    }

    /// Applies the planned tile geometry to the compositor pads.
    fn relayout(&self) {
        let specs: Vec<TrackSpec> = self.live_inputs().map(|i| i.input.spec().clone()).collect();
        let plan = plan::plan(&self.spec, &specs, &self.ctx);
        for tile in &plan.tiles {
            let Some(live) = self.inputs.iter().find(|i| i.input.id() == tile.input) else {
                continue;
            };
            let pad = &live.target_pad;
            pad.set_property("xpos", tile.rect.x);
            pad.set_property("ypos", tile.rect.y);
            pad.set_property("width", tile.rect.width);
            pad.set_property("height", tile.rect.height);
        }
    }

    fn live_inputs(&self) -> impl Iterator<Item = &LiveInput> {
        self.inputs.iter().filter(|i| i.drain_deadline.is_none())
    }

    fn remove_input(&mut self, id: &str) -> Result<(), RecorderError> {
        self.require_active()?;
        let live = self
            .inputs
            .iter_mut()
            .find(|i| i.input.id() == id && i.drain_deadline.is_none())
            .ok_or_else(|| RecorderError::UnknownInput(id.to_string()))?;
        live.removing.store(true, Ordering::Release);
        live.drain_deadline = Some(Instant::now() + DRAIN_TIMEOUT);
        live.input.close();
        if live.target_pad.has_property("alpha") {
            // Hide the leaving tile at once; the re-flowed layout must not show it while it drains.
            live.target_pad.set_property("alpha", 0.0f64);
        }
        lock(&self.shared.inputs).retain(|i| i.id() != id);
        self.relayout();
        Ok(())
    }

    fn drained(&mut self, id: &str) {
        let draining = self
            .inputs
            .iter()
            .any(|i| i.input.id() == id && i.drain_deadline.is_some());
        if draining {
            self.teardown_input(id, false);
        }
    }

    /// Removes a drained (or stuck, `forced`) branch and releases its target pad.
    fn teardown_input(&mut self, id: &str, forced: bool) {
        let Some(pos) = self.inputs.iter().position(|i| i.input.id() == id) else {
            return;
        };
        let live = self.inputs.remove(pos);
        if forced && live.output_key.is_some() {
            live.target_pad.send_event(gst::event::Eos::new());
        }
        for e in &live.elements {
            let _ = e.set_state(gst::State::Null);
        }
        let _ = self.pipeline.remove_many(&live.elements);
        if live.output_key.is_none() {
            if let Some(parent) = live.target_pad.parent_element() {
                parent.release_request_pad(&live.target_pad);
            }
        }
        self.retired.push(live.input);
    }

    fn output_done(&mut self, key: &str) {
        if self.stopping.is_some() {
            return;
        }
        let Some(pos) = self.outputs.iter().position(|o| o.plan.key == key) else {
            return;
        };
        let out = self.outputs.remove(pos);
        for e in [&out.built.muxer, &out.built.sink] {
            let _ = e.set_state(gst::State::Null);
        }
        let _ = self
            .pipeline
            .remove_many([&out.built.muxer, &out.built.sink]);
        let file = self.finalize_file(&out);
        self.done_files.push(file);
    }

    /// Renames `<file>.part` to its final name and describes it.
    fn finalize_file(&self, out: &LiveOutput) -> OutputFile {
        let plan = &out.plan;
        let path = match std::fs::rename(&plan.part_path, &plan.final_path) {
            Ok(()) => plan.final_path.clone(),
            Err(e) => {
                self.warn(format!("rename {}: {e}", plan.part_path.display()));
                plan.part_path.clone()
            }
        };
        lock(&self.shared.files).retain(|f| f.path != plan.part_path);
        OutputFile {
            bytes: crate::crypt::media_len(&path).unwrap_or(0),
            path,
            participant: plan.participant.clone(),
            start_offset: Duration::from_nanos(out.origin.nseconds()),
        }
    }

    fn keyframe(&self, id: &str) {
        let Some(live) = self.live_inputs().find(|i| i.input.id() == id) else {
            return;
        };
        if self.shared.timeline.state() == RecorderState::Recording
            && live.input.keyframe_request_due()
        {
            self.events.emit(RecorderEvent::KeyframeNeeded {
                input: id.to_string(),
            });
        }
    }

    fn pause(&mut self) -> Result<(), RecorderError> {
        match self.shared.timeline.state() {
            RecorderState::Recording => {}
            s => return Err(RecorderError::State(s)),
        }
        *lock(&self.shared.paused_at) = Some(self.shared.timeline.now());
        self.shared.timeline.set_state(RecorderState::Paused);
        self.hold_mixers();
        self.pipeline
            .set_state(gst::State::Paused)
            .map_err(gst_err("pause"))?;
        Ok(())
    }

    /// Composite: blocks the mixers' output while paused. Live aggregators otherwise keep
    /// producing filler against the frozen running time, which would lengthen the file.
    fn hold_mixers(&mut self) {
        for (_, mixer) in &self.mixers {
            let pad = mixer.static_pad("src").expect("mixer has a src pad");
            let block = gst::PadProbeType::BLOCK | gst::PadProbeType::BUFFER;
            if let Some(id) = pad.add_probe(block, |_, _| gst::PadProbeReturn::Ok) {
                self.holds.push((pad, id));
            }
        }
    }

    fn release_mixers(&mut self) {
        for (pad, id) in self.holds.drain(..) {
            pad.remove_probe(id);
        }
    }

    fn resume(&mut self) -> Result<(), RecorderError> {
        match self.shared.timeline.state() {
            RecorderState::Paused => {}
            s => return Err(RecorderError::State(s)),
        }
        self.pipeline
            .set_state(gst::State::Playing)
            .map_err(gst_err("resume"))?;
        self.release_mixers();
        *lock(&self.shared.paused_at) = None;
        self.shared.timeline.set_state(RecorderState::Recording);
        let videos: Vec<String> = self
            .live_inputs()
            .filter(|i| i.input.spec().kind == TrackKind::Video)
            .map(|i| i.input.id().to_string())
            .collect();
        for id in videos {
            self.keyframe(&id);
        }
        Ok(())
    }

    fn set_speaker(&mut self, participant: Option<String>) -> Result<(), RecorderError> {
        self.require_active()?;
        self.ctx.active_speaker = participant;
        self.relayout();
        Ok(())
    }

    fn stop(&mut self, timeout: Duration, reply: Option<Reply<Outcome>>) {
        if let Err(e) = self.require_active() {
            if let Some(r) = reply {
                let _ = r.send(Err(e));
            }
            return;
        }
        let position = self.shared.position();
        self.shared.timeline.set_state(RecorderState::Stopping);
        if self.pipeline.current_state() != gst::State::Playing {
            let _ = self.pipeline.set_state(gst::State::Playing);
        }
        self.release_mixers();
        *lock(&self.shared.paused_at) = Some(position);
        for live in &self.inputs {
            live.input.close();
        }
        for src in self.pipeline.iterate_sources().into_iter().flatten() {
            if !src.is::<gst_app::AppSrc>() {
                src.send_event(gst::event::Eos::new());
            }
        }
        self.stopping = Some(Stopping {
            deadline: Instant::now() + timeout,
            reply,
        });
        if self.outputs.is_empty() {
            self.finish(true);
        }
    }

    fn check_deadlines(&mut self) {
        let now = Instant::now();
        if self.stopping.as_ref().is_some_and(|s| s.deadline <= now) {
            self.warn("stop timed out waiting for end-of-stream".into());
            self.finish(false);
            return;
        }
        let stuck: Vec<String> = self
            .inputs
            .iter()
            .filter(|i| i.drain_deadline.is_some_and(|d| d <= now))
            .map(|i| i.input.id().to_string())
            .collect();
        for id in stuck {
            self.teardown_input(&id, true);
        }
    }

    fn bus(&mut self, msg: &gst::Message) {
        use gst::MessageView;
        match msg.view() {
            MessageView::Eos(_) if self.stopping.is_some() => self.finish(true),
            MessageView::Warning(w) => self.warn(format!("{}: {}", source_name(msg), w.error())),
            MessageView::Error(e) => {
                let text = format!("{}: {} ({:?})", source_name(msg), e.error(), e.debug());
                match self.input_of(msg) {
                    // One participant's undecodable media (e.g. nothing but garbage behind
                    // valid RTP headers: "No valid frames decoded before end of stream")
                    // costs that input, not everyone's recording.
                    Some(id) => {
                        self.warn(format!("input {id} dropped after an error: {text}"));
                        self.teardown_input(&id, true);
                    }
                    None => self.fail(text),
                }
            }
            _ => {}
        }
    }

    /// The live input whose chain posted `msg`, if any.
    fn input_of(&self, msg: &gst::Message) -> Option<String> {
        let src = msg.src()?;
        self.inputs
            .iter()
            .find(|i| {
                i.elements
                    .iter()
                    .any(|e| e.upcast_ref::<gst::Object>() == src)
            })
            .map(|i| i.input.id().to_string())
    }

    fn warn(&self, message: String) {
        tracing::warn!("recorder: {message}");
        self.shared.note_error(message.clone());
        self.events.emit(RecorderEvent::Warning { message });
    }

    /// Fatal error: tear down, keep the `.part` files for salvage, report.
    fn fail(&mut self, message: String) {
        tracing::error!("recorder: {message}");
        self.shared.note_error(message.clone());
        let _ = self.pipeline.set_state(gst::State::Null);
        self.shared.timeline.set_state(RecorderState::Finished);
        self.events.emit(RecorderEvent::Error {
            message: message.clone(),
        });
        if let Some(r) = self.stopping.take().and_then(|s| s.reply) {
            let _ = r.send(Err(RecorderError::Pipeline(message)));
        }
        self.events.emit(RecorderEvent::Finished { outcome: None });
        self.finished = true;
    }

    fn finish(&mut self, clean: bool) {
        let Some(stopping) = self.stopping.take() else {
            return;
        };
        let _ = self.pipeline.set_state(gst::State::Null);
        self.shared.timeline.set_state(RecorderState::Finished);
        let mut files = std::mem::take(&mut self.done_files);
        for out in &self.outputs {
            files.push(self.finalize_file(out));
        }
        let inputs = self
            .retired
            .iter()
            .chain(self.inputs.iter().map(|i| &i.input));
        let outcome = Outcome {
            bytes: files.iter().map(|f| f.bytes).sum(),
            files,
            duration: self.shared.media(),
            inputs: inputs.map(TrackInput::stats).collect(),
            clean,
        };
        *lock(&self.shared.files) = outcome.files.clone();
        self.events.emit(RecorderEvent::Finished {
            outcome: Some(outcome.clone()),
        });
        if let Some(r) = stopping.reply {
            let _ = r.send(Ok(outcome));
        }
        self.finished = true;
    }

    fn cancel(&mut self) -> Result<(), RecorderError> {
        if self.shared.timeline.state() == RecorderState::Finished {
            return Err(RecorderError::Finished);
        }
        let _ = self.pipeline.set_state(gst::State::Null);
        self.shared.timeline.set_state(RecorderState::Finished);
        for live in &self.inputs {
            live.input.close();
        }
        let paths = self
            .outputs
            .iter()
            .map(|o| o.plan.part_path.clone())
            .chain(self.done_files.iter().map(|f| f.path.clone()));
        for path in paths {
            if let Err(e) = std::fs::remove_file(&path) {
                tracing::warn!("cancel: remove {}: {e}", path.display());
            }
        }
        lock(&self.shared.files).clear();
        if let Some(r) = self.stopping.take().and_then(|s| s.reply) {
            let _ = r.send(Err(RecorderError::Finished));
        }
        self.events.emit(RecorderEvent::Finished { outcome: None });
        self.finished = true;
        Ok(())
    }
}

fn source_name(msg: &gst::Message) -> String {
    msg.src()
        .map(|s| s.path_string().to_string())
        .unwrap_or_default()
}

fn reply<T>(r: Reply<T>, result: Result<T, RecorderError>) {
    let _ = r.send(result);
}

fn check_dir(spec: &RecordingSpec) -> Result<(), RecorderError> {
    let dir = spec.output_dir();
    let meta =
        std::fs::metadata(dir).map_err(|e| RecorderError::Io(format!("{}: {e}", dir.display())))?;
    if !meta.is_dir() || meta.permissions().readonly() {
        return Err(RecorderError::Io(format!(
            "{} is not a writable directory",
            dir.display()
        )));
    }
    Ok(())
}

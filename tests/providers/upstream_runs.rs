//! Upstream runs as a durable job drives them through `providers::RunContext`: the real Replicate
//! and Veo clients against the fake upstreams, and the mocks. A new run's id is saved before any
//! wait on it; a saved id is resumed (by a fresh client, as after a restart) with no second create;
//! an id the upstream forgot fails without a create; a run whose id cannot be saved is cancelled;
//! a dropped call cancels upstream only when its context says so at the moment of the drop.
//!
//! Every test runs against both polled providers through [`Upstream`], so the two stay alike.

use crate::support;

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use mvgen::providers::gemini_video::GeminiVideoClient;
use mvgen::providers::mock::{MockGeminiVideos, MockImages, MockVideos};
use mvgen::providers::replicate::ReplicateClient;
use mvgen::providers::{
    BoxFuture, ImageMaker, ImageRequest, Output, ProviderConfig, ProviderError, RunContext, RunObserver, UpstreamRun,
    VideoMaker, VideoRequest,
};
use support::fake_upstream::{
    FakeFile, FakeGemini, FakeReplicate, Outcome, PredictionPlan, Route, VeoOutcome, VeoPlan, test_provider_config,
};

use super::made;

/// What a [`Recorder`] saw, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Event {
    /// `started`, with how many polls the upstream had received by then.
    Started {
        run: UpstreamRun,
        polls_before: usize,
    },
    Progress(String, Option<String>),
}

fn progress(stage: &str, status: Option<&str>) -> Event {
    Event::Progress(stage.to_owned(), status.map(str::to_owned))
}

/// A job store stand-in: records every call, can refuse to save, and answers `cancel_on_drop`
/// from a flag a test flips while the run is going.
struct Recorder<'a> {
    events: Mutex<Vec<Event>>,
    refuse_to_save: bool,
    cancel_on_drop: AtomicBool,
    polls_so_far: Box<dyn Fn() -> usize + Send + Sync + 'a>,
}

impl<'a> Recorder<'a> {
    /// A durable job's observer: saves, and keeps runs alive when dropped.
    fn new(polls_so_far: impl Fn() -> usize + Send + Sync + 'a) -> Self {
        Recorder {
            events: Mutex::new(Vec::new()),
            refuse_to_save: false,
            cancel_on_drop: AtomicBool::new(false),
            polls_so_far: Box::new(polls_so_far),
        }
    }

    fn events(&self) -> Vec<Event> {
        self.events.lock().unwrap().clone()
    }

    fn started(&self) -> Vec<UpstreamRun> {
        self.events()
            .into_iter()
            .filter_map(|e| match e {
                Event::Started { run, .. } => Some(run),
                Event::Progress(..) => None,
            })
            .collect()
    }
}

impl RunObserver for Recorder<'_> {
    fn started<'a>(&'a self, run: &'a UpstreamRun) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let polls_before = (self.polls_so_far)();
            self.events.lock().unwrap().push(Event::Started { run: run.clone(), polls_before });
            if self.refuse_to_save { Err("the jobs database is unreachable".to_owned()) } else { Ok(()) }
        })
    }

    fn progress(&self, stage: &str, upstream_status: Option<&str>) {
        self.events.lock().unwrap().push(progress(stage, upstream_status));
    }

    fn cancel_on_drop(&self) -> bool {
        self.cancel_on_drop.load(Ordering::SeqCst)
    }
}

/// One polled provider and its fake.
enum Upstream {
    Replicate(FakeReplicate, ProviderConfig),
    Veo(FakeGemini, ProviderConfig),
}

const REPLICATE_MODEL: &str = "google/veo-3.1";
const VEO_MODEL: &str = "veo-3.1-generate-preview";

impl Upstream {
    async fn both() -> [Upstream; 2] {
        let replicate = FakeReplicate::start().await;
        let config = test_provider_config("http://127.0.0.1:9", &replicate.base_url);
        let veo = FakeGemini::start().await;
        let veo_config = test_provider_config(&veo.base_url, "http://127.0.0.1:9");
        [Upstream::Replicate(replicate, config), Upstream::Veo(veo, veo_config)]
    }

    /// A new client, as a restarted worker builds one.
    fn fresh_client(&self) -> Box<dyn VideoMaker> {
        match self {
            Upstream::Replicate(_, config) => {
                let http = mvgen::providers::client::build_client(config).unwrap();
                Box::new(ReplicateClient::new(config, http).unwrap())
            }
            Upstream::Veo(_, config) => {
                let http = mvgen::providers::client::build_client(config).unwrap();
                Box::new(GeminiVideoClient::new(config, http).unwrap())
            }
        }
    }

    fn provider(&self) -> &'static str {
        match self {
            Upstream::Replicate(..) => "replicate",
            Upstream::Veo(..) => "gemini",
        }
    }

    fn request(&self) -> VideoRequest {
        let model = match self {
            Upstream::Replicate(..) => REPLICATE_MODEL,
            Upstream::Veo(..) => VEO_MODEL,
        };
        VideoRequest {
            model: model.into(),
            prompt: "she drives".into(),
            aspect_ratio: "16:9".into(),
            duration: 4,
            generate_audio: true,
            person_generation: "allow_all".into(),
            ..Default::default()
        }
    }

    /// The next run ends with an MP4 on its `polls`-th poll.
    fn plan_polls(&self, polls: u32) {
        match self {
            Upstream::Replicate(fake, _) => fake.push_prediction(PredictionPlan {
                polls_until_done: polls,
                outcome: Outcome::Succeed(FakeFile::mp4()),
            }),
            Upstream::Veo(fake, _) => {
                fake.push_veo_plan(VeoPlan { polls_until_done: polls, outcome: VeoOutcome::Succeed(FakeFile::mp4()) })
            }
        }
    }

    /// The next run goes on until [`Upstream::finish`], then ends with an MP4.
    fn plan_held(&self) {
        match self {
            Upstream::Replicate(fake, _) => {
                fake.push_prediction(PredictionPlan::held(Outcome::Succeed(FakeFile::mp4())))
            }
            Upstream::Veo(fake, _) => fake.push_veo_plan(VeoPlan::held(VeoOutcome::Succeed(FakeFile::mp4()))),
        }
    }

    fn finish(&self, id: &str) {
        match self {
            Upstream::Replicate(fake, _) => fake.finish(id),
            Upstream::Veo(fake, _) => fake.finish_operation(id),
        }
    }

    fn creates(&self) -> usize {
        match self {
            Upstream::Replicate(fake, _) => fake.creates_for(REPLICATE_MODEL),
            Upstream::Veo(fake, _) => fake.starts_for(VEO_MODEL),
        }
    }

    fn polls(&self) -> usize {
        match self {
            Upstream::Replicate(fake, _) => fake.received_on(Route::Poll).len(),
            Upstream::Veo(fake, _) => fake.received_on(support::fake_upstream::VeoRoute::Poll).len(),
        }
    }

    fn polls_of(&self, id: &str) -> usize {
        match self {
            Upstream::Replicate(fake, _) => fake.polls_of(id),
            Upstream::Veo(fake, _) => fake.polls_of(id),
        }
    }

    fn cancelled(&self) -> Vec<String> {
        match self {
            Upstream::Replicate(fake, _) => fake.cancelled(),
            Upstream::Veo(fake, _) => fake.cancelled_operations(),
        }
    }

    /// An id of the upstream's shape that it never issued.
    fn unknown_id(&self) -> &'static str {
        match self {
            Upstream::Replicate(..) => "pred-from-another-account",
            Upstream::Veo(..) => "models/veo-3.1-generate-preview/operations/op-expired",
        }
    }

    /// The progress of a run planned with `plan_polls(3)`, after `creating` and the save.
    fn progress_of_three_polls(&self) -> Vec<Event> {
        match self {
            Upstream::Replicate(..) => vec![
                progress("waiting", Some("starting")),
                progress("waiting", Some("processing")),
                progress("downloading", Some("succeeded")),
            ],
            Upstream::Veo(..) => vec![progress("waiting", Some("running")), progress("downloading", Some("done"))],
        }
    }
}

/// Waits (bounded) for something a background task does, such as a cancel sent on drop.
async fn wait_for(condition: impl Fn() -> bool) {
    for _ in 0..200 {
        if condition() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Drives `call` until `recorder` saw its run saved and the upstream received `polls` polls in
/// all, then runs `before_drop` and drops the call (a worker going away mid-run). Returns the
/// saved run.
async fn drop_after_polls(
    upstream: &Upstream,
    recorder: &Recorder<'_>,
    call: BoxFuture<'_, Result<Output, ProviderError>>,
    polls: usize,
    before_drop: impl FnOnce(),
) -> UpstreamRun {
    let enough = async {
        wait_for(|| !recorder.started().is_empty() && upstream.polls() >= polls).await;
        before_drop();
    };
    tokio::select! {
        result = call => panic!("a held run ended: {result:?}"),
        () = enough => {}
    }
    recorder.started().pop().expect("the run was saved before it was dropped")
}

#[tokio::test]
async fn a_new_run_is_saved_before_the_first_poll_and_reports_the_upstream_status() {
    for upstream in Upstream::both().await {
        upstream.plan_polls(3);
        let recorder = Recorder::new(|| upstream.polls());

        let video = upstream.fresh_client().make_video(&upstream.request(), RunContext::new(&recorder, &[])).await;

        assert_eq!(video.unwrap().content_type, "video/mp4");
        let events = recorder.events();
        let Event::Started { run, polls_before } = &events[1] else { panic!("{events:?}") };
        assert_eq!(*polls_before, 0, "{}: saved before any poll", upstream.provider());
        assert_eq!((run.provider.as_str(), run.slot), (upstream.provider(), 0));
        let mut expected = vec![progress("creating", None), events[1].clone()];
        expected.extend(upstream.progress_of_three_polls());
        assert_eq!(events, expected, "{}", upstream.provider());
        assert_eq!(upstream.polls_of(&run.id), 3);
        assert_eq!(upstream.creates(), 1);
    }
}

#[tokio::test]
async fn a_saved_run_is_resumed_by_a_fresh_client_without_a_second_create() {
    for upstream in Upstream::both().await {
        upstream.plan_held();
        let first = Recorder::new(|| upstream.polls());
        let client = upstream.fresh_client();
        let request = upstream.request();
        let saved =
            drop_after_polls(&upstream, &first, client.make_video(&request, RunContext::new(&first, &[])), 2, || ())
                .await;
        let polls_before_resume = upstream.polls_of(&saved.id);
        upstream.finish(&saved.id);

        let second = Recorder::new(|| upstream.polls());
        let runs = [saved.clone()];
        let video = made(upstream.fresh_client().make_video(&request, RunContext::new(&second, &runs))).await;

        assert_eq!(video.unwrap().bytes, mvgen::providers::mock::MOCK_CLIP, "{}", upstream.provider());
        assert_eq!(upstream.creates(), 1, "{}: exactly one paid run", upstream.provider());
        assert!(upstream.polls_of(&saved.id) > polls_before_resume, "the saved id itself is polled");
        assert!(second.started().is_empty(), "a resumed run is not saved again");
        let stages: Vec<Event> = second.events().into_iter().take(1).collect();
        assert_eq!(stages, [progress("resuming", None)]);
        assert_eq!(upstream.cancelled(), Vec::<String>::new(), "the dropped worker left the run alone");
    }
}

/// A job canceled while no call holds its run (queued after a shutdown, or its worker dead) cancels
/// the saved id through `Providers::cancel_run`, which picks the maker by the run's provider.
#[tokio::test]
async fn a_saved_run_nobody_holds_is_cancelled_by_id_through_the_provider_that_started_it() {
    let [replicate, veo] = Upstream::both().await;
    let (Upstream::Replicate(fake_replicate, _), Upstream::Veo(fake_veo, _)) = (&replicate, &veo) else {
        unreachable!()
    };
    let config = test_provider_config(&fake_veo.base_url, &fake_replicate.base_url);
    let providers = mvgen::providers::Providers::from_config(&config).unwrap();
    for upstream in [&replicate, &veo] {
        upstream.plan_held();
        let worker = Recorder::new(|| upstream.polls());
        let client = upstream.fresh_client();
        let request = upstream.request();
        let call = client.make_video(&request, RunContext::new(&worker, &[]));
        // A worker shutting down: the run is left going for whoever resumes it.
        let saved = drop_after_polls(upstream, &worker, call, upstream.polls() + 1, || ()).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(upstream.cancelled(), Vec::<String>::new(), "{}", upstream.provider());

        providers.cancel_run(&saved).await.unwrap();
        assert_eq!(upstream.cancelled(), std::slice::from_ref(&saved.id), "{}", upstream.provider());
        let unknown = UpstreamRun { id: upstream.unknown_id().into(), ..saved };
        let err = providers.cancel_run(&unknown).await.unwrap_err();
        assert!(err.contains("404"), "{}: an id the upstream does not know is an error: {err}", upstream.provider());
    }
    let elsewhere = UpstreamRun { provider: "fal".into(), id: "req-1".into(), slot: 0 };
    assert!(providers.cancel_run(&elsewhere).await.unwrap_err().contains("fal"));

    // The mocks run nothing anywhere: they record the cancel.
    let mock = UpstreamRun { provider: "gemini-mock".into(), id: "mock-video-cancel-me".into(), slot: 0 };
    mvgen::providers::Providers::mock().cancel_run(&mock).await.unwrap();
    assert!(mvgen::providers::mock::cancelled_runs().contains(&mock));
}

#[tokio::test]
async fn a_saved_id_the_upstream_no_longer_knows_fails_for_good_without_a_create() {
    for upstream in Upstream::both().await {
        let recorder = Recorder::new(|| 0);
        let runs = [UpstreamRun { provider: upstream.provider().into(), id: upstream.unknown_id().into(), slot: 0 }];

        let err = upstream.fresh_client().make_video(&upstream.request(), RunContext::new(&recorder, &runs)).await;

        let err = err.unwrap_err();
        assert!(
            matches!(&err, ProviderError::RunFailed { message, .. }
                if message.contains(upstream.unknown_id()) && message.contains("404") && message.contains("no new run")),
            "{}: {err:?}",
            upstream.provider()
        );
        assert_eq!(upstream.creates(), 0);
        assert!(recorder.started().is_empty());
        assert_eq!(upstream.cancelled(), Vec::<String>::new(), "nothing to cancel");
    }
}

#[tokio::test]
async fn a_run_whose_id_cannot_be_saved_is_cancelled_and_never_waited_on() {
    for upstream in Upstream::both().await {
        upstream.plan_held();
        let mut recorder = Recorder::new(|| upstream.polls());
        recorder.refuse_to_save = true;

        let err = upstream.fresh_client().make_video(&upstream.request(), RunContext::new(&recorder, &[])).await;

        let err = err.unwrap_err();
        let run = recorder.started().pop().expect("the save was attempted");
        assert!(
            matches!(&err, ProviderError::Unreachable { message, .. }
                if message.contains(&run.id) && message.contains("could not be saved")),
            "{}: {err:?}",
            upstream.provider()
        );
        assert_eq!(upstream.cancelled(), std::slice::from_ref(&run.id), "{}", upstream.provider());
        assert_eq!(upstream.polls(), 0, "nothing waited on an unsaved run");
    }
}

#[tokio::test]
async fn a_dropped_call_cancels_upstream_only_when_its_context_says_so_at_drop_time() {
    for upstream in Upstream::both().await {
        // A worker shutting down: the run is left for whoever resumes it.
        upstream.plan_held();
        let shutting_down = Recorder::new(|| upstream.polls());
        let client = upstream.fresh_client();
        let request = upstream.request();
        let kept = drop_after_polls(
            &upstream,
            &shutting_down,
            client.make_video(&request, RunContext::new(&shutting_down, &[])),
            1,
            || (),
        )
        .await;
        // The drop cancels on a background task when it cancels at all; the next call gives it time.

        // A job cancelled by its user: the flag flips while the run is going, then the call drops.
        upstream.plan_held();
        let canceled = Recorder::new(|| upstream.polls());
        let call = client.make_video(&request, RunContext::new(&canceled, &[]));
        let flip = || canceled.cancel_on_drop.store(true, Ordering::SeqCst);
        let dropped = drop_after_polls(&upstream, &canceled, call, upstream.polls() + 1, flip).await;
        wait_for(|| !upstream.cancelled().is_empty()).await;
        // Enough time for a stray cancel of the first run to arrive as well.
        tokio::time::sleep(Duration::from_millis(100)).await;

        assert_ne!(kept.id, dropped.id);
        assert_eq!(upstream.cancelled(), [dropped.id], "{}: only the cancelled job's run", upstream.provider());
    }
}

#[tokio::test]
async fn replicate_leaves_prefer_wait_off_for_a_run_that_outlives_its_call() {
    let [Upstream::Replicate(fake, config), _] = Upstream::both().await else { unreachable!() };
    let client = ReplicateClient::new(&config, mvgen::providers::client::build_client(&config).unwrap()).unwrap();
    let recorder = Recorder::new(|| 0);

    made(client.make_image(&image_request(), RunContext::new(&recorder, &[]))).await.unwrap();
    made(client.make_image(&image_request(), RunContext::detached())).await.unwrap();

    let creates = fake.received_on(Route::Create);
    assert_eq!(creates[0].header("prefer"), None, "the id must come back at once to be saved");
    assert_eq!(creates[1].header("prefer"), Some("wait=5"), "a waiting caller still uses Prefer: wait");
}

#[tokio::test]
async fn each_image_of_a_request_resumes_and_saves_under_its_own_slot() {
    let [Upstream::Replicate(fake, config), _] = Upstream::both().await else { unreachable!() };
    let client = ReplicateClient::new(&config, mvgen::providers::client::build_client(&config).unwrap()).unwrap();
    let first = Recorder::new(|| 0);
    made(client.make_image(&image_request(), RunContext::new(&first, &[]).slot(1))).await.unwrap();
    let saved = first.started();
    assert_eq!(saved.iter().map(|r| r.slot).collect::<Vec<_>>(), [1]);

    // A retry of the whole request: image 1 resumes its run, image 0 starts its own.
    let retry = Recorder::new(|| 0);
    let ctx = RunContext::new(&retry, &saved);
    made(client.make_image(&image_request(), ctx.slot(1))).await.unwrap();
    made(client.make_image(&image_request(), ctx.slot(0))).await.unwrap();

    assert_eq!(fake.creates_for("google/imagen-4"), 2);
    let started = retry.started();
    assert_eq!(started.len(), 1);
    assert_eq!((started[0].slot, started[0].id == saved[0].id), (0, false));
}

#[tokio::test]
async fn mocks_run_as_labelled_deterministic_saved_and_resumable_runs() {
    let recorder = Recorder::new(|| 0);
    let unseeded = image_request();
    let image = made(MockImages.make_image(&unseeded, RunContext::new(&recorder, &[]))).await.unwrap();
    let video = made(MockVideos.make_video(&video_request(), RunContext::new(&recorder, &[]))).await.unwrap();
    let gemini = made(MockGeminiVideos.make_video(&video_request(), RunContext::new(&recorder, &[]))).await.unwrap();

    let runs = recorder.started();
    let providers: Vec<&str> = runs.iter().map(|r| r.provider.as_str()).collect();
    assert_eq!(providers, ["mock", "mock", "gemini-mock"]);
    assert!(runs.iter().all(|r| r.id.starts_with("mock-")), "{runs:?}");
    assert_eq!(
        recorder.events()[..4],
        [
            progress("creating", None),
            recorder.events()[1].clone(),
            progress("waiting", Some("processing")),
            progress("downloading", Some("succeeded"))
        ]
    );
    assert!(MockImages.is_mock() && MockVideos.is_mock() && MockGeminiVideos.is_mock());
    assert_eq!((MockImages.backend(), MockGeminiVideos.backend()), ("mock", "gemini-mock"));

    // Resumed: the same picture as the first attempt, although an unseeded call draws a new one.
    let resumed = Recorder::new(|| 0);
    let again = made(MockImages.make_image(&unseeded, RunContext::new(&resumed, &runs[..1]))).await.unwrap();
    assert_eq!(again, image);
    assert_ne!(made(MockImages.make_image(&unseeded, RunContext::detached())).await.unwrap(), image);
    let video_again =
        made(MockVideos.make_video(&video_request(), RunContext::new(&resumed, &runs[1..2]))).await.unwrap();
    assert_eq!((video_again, gemini), (video.clone(), video));
    assert!(resumed.started().is_empty());

    let unknown = [UpstreamRun { provider: "mock".into(), id: "pred-1".into(), slot: 0 }];
    let err = MockImages.make_image(&unseeded, RunContext::new(&resumed, &unknown)).await.unwrap_err();
    assert!(matches!(err, ProviderError::RunFailed { provider: "mock", .. }), "{err:?}");
}

fn image_request() -> ImageRequest {
    ImageRequest {
        model: "google/imagen-4".into(),
        prompt: "a woman in a red coat".into(),
        aspect_ratio: "3:4".into(),
        safety_filter_level: "block_medium_and_above".into(),
        person_generation: "allow_adult".into(),
        output_format: "png".into(),
        ..Default::default()
    }
}

fn video_request() -> VideoRequest {
    VideoRequest { model: "google/veo-3.1".into(), prompt: "she drives".into(), duration: 4, ..Default::default() }
}

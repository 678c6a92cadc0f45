//! The typed API on both stores: jobs enqueued with typed arguments, run by
//! typed handlers, their results awaited (event-driven); failures you can
//! match; progress; application state in handlers.

mod common;

use common::*;
use ff_engine::core::retry::RetryPolicy;
use ff_engine::store::{MemoryStore, Store};
use ff_engine::worker::{Job, JobError, Worker};
use ff_engine::{Client, Codec, Error, ExecutionSpec, Failure, JobHandle, JobType, Outcome};
use ff_tests::{RedisServer, TestRedis};
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Email {
    to: String,
    subject: String,
}

struct SendEmail;
impl JobType for SendEmail {
    const KIND: &'static str = "email.send";
    type Args = Email;
    type Output = String;
}

/// The same job, carried as MessagePack.
struct SendEmailPacked;
impl JobType for SendEmailPacked {
    const KIND: &'static str = "email.packed";
    type Args = Email;
    type Output = Vec<String>;
    const CODEC: Codec = Codec::MessagePack;
}

struct Divide;
impl JobType for Divide {
    const KIND: &'static str = "divide";
    type Args = (i64, i64);
    type Output = i64;
}

#[derive(Debug)]
struct DivideByZero;
impl std::fmt::Display for DivideByZero {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("division by zero")
    }
}
impl std::error::Error for DivideByZero {}

/// Sent messages, given to handlers as application state.
#[derive(Default)]
struct Outbox(AtomicU64);

fn workers(c: &Client) -> Worker {
    Worker::builder(c.clone(), "typed")
        .concurrency(64)
        .data(Outbox::default())
        .job(SendEmail, |job: Job, e: Email| async move {
            let n = job
                .data::<Outbox>()
                .expect("the outbox")
                .0
                .fetch_add(1, Relaxed);
            Ok(format!("msg-{n} to {}", e.to))
        })
        .job(SendEmailPacked, |_job: Job, e: Email| async move {
            Ok(vec![e.to, e.subject])
        })
        .job(Divide, |_job: Job, (a, b): (i64, i64)| async move {
            if b == 0 {
                return Err(DivideByZero.into());
            }
            Ok(a / b)
        })
        .start()
        .expect("worker")
}

async fn typed_round_trips(store: Arc<dyn Store>) {
    // (the engine promotes the retry)
    let engine = ff_engine::Engine::start(Default::default(), store.clone())
        .await
        .unwrap();
    let c = client_on(store).await;
    let w = workers(&c);
    let email = Email {
        to: "ada@example.com".into(),
        subject: "hi".into(),
    };
    let h = c.enqueue(SendEmail, &email).await.unwrap();
    let out = h.result_within(Duration::from_secs(10)).await.unwrap();
    assert_eq!(out, Outcome::Succeeded("msg-0 to ada@example.com".into()));
    // Stored as JSON: readable without the type.
    let r = c.get(h.id()).await.unwrap();
    assert_eq!(r.payload, serde_json::to_vec(&email).unwrap());

    let h = c.enqueue(SendEmailPacked, &email).await.unwrap();
    assert_eq!(
        h.result_within(Duration::from_secs(10)).await.unwrap(),
        Outcome::Succeeded(vec!["ada@example.com".to_owned(), "hi".to_owned()])
    );

    // Options through the spec; a retryable error's type and message kept.
    let h = c
        .enqueue_with(Divide, &(1, 0), |s| {
            s.priority(5).retry(RetryPolicy::fixed(1, 10))
        })
        .await
        .unwrap();
    match h.result_within(Duration::from_secs(10)).await.unwrap() {
        Outcome::Failed { failure, attempt } => {
            assert_eq!(attempt, 2, "one retry ran");
            assert!(failure.kind.ends_with("DivideByZero"), "{failure:?}");
            assert_eq!(failure.message, "division by zero");
            assert!(failure.retryable);
        }
        other => panic!("{other:?}"),
    }
    let h = c.enqueue(Divide, &(7, 2)).await.unwrap();
    assert_eq!(
        h.result_within(Duration::from_secs(10)).await.unwrap(),
        Outcome::Succeeded(3)
    );

    // A payload that does not decode fails for good at once, however many
    // retries are left, naming the kind and the codec's complaint.
    let bad = c
        .create(
            ExecutionSpec::new(SendEmail::KIND)
                .payload("{\"to\": 3}")
                .retry(RetryPolicy::fixed(5, 10)),
        )
        .await
        .unwrap();
    match c
        .wait(&bad.execution, Duration::from_secs(10))
        .await
        .unwrap()
    {
        Outcome::Failed { failure, attempt } => {
            assert_eq!(attempt, 1);
            assert_eq!(failure.kind, Failure::DECODE);
            assert!(!failure.retryable);
            assert!(
                failure
                    .message
                    .starts_with("email.send: cannot decode with Json"),
                "{failure:?}"
            );
        }
        other => panic!("{other:?}"),
    }

    // Waiting on an execution already ended answers at once; a wait that
    // runs out says so; nothing stays registered.
    let again = JobHandle::<SendEmail>::of(&c, bad.execution.clone());
    assert!(matches!(
        again
            .result_within(Duration::from_millis(100))
            .await
            .unwrap(),
        Outcome::Failed { .. }
    ));
    let later = c
        .create(ExecutionSpec::new("nobody.runs.this"))
        .await
        .unwrap()
        .execution;
    match c.wait(&later, Duration::from_millis(200)).await {
        Err(Error::TimedOut { execution }) => assert_eq!(execution, later),
        other => panic!("{other:?}"),
    }
    c.cancel(&later, "not needed").await.unwrap();
    assert_eq!(
        c.wait(&later, Duration::from_secs(5)).await.unwrap(),
        Outcome::Cancelled {
            reason: "not needed".into()
        }
    );
    assert_eq!(c.waiting(), 0);
    w.shutdown().await;
    assert!(engine.shutdown().await);
}

#[tokio::test]
async fn typed_jobs_round_trip_on_redis() {
    let redis = TestRedis::standalone();
    typed_round_trips(store(&redis.url()).await).await;
}

#[tokio::test]
async fn typed_jobs_round_trip_in_process() {
    typed_round_trips(Arc::new(MemoryStore::new())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_concurrent_waiters_all_resolve() {
    let redis = TestRedis::standalone();
    let c = client(&redis.url()).await;
    let n = 3_000i64;
    let mut handles = Vec::new();
    for i in 0..n {
        handles.push(c.enqueue(Divide, &(i, 1)).await.unwrap());
    }
    let waiting: Vec<_> = handles
        .into_iter()
        .map(|h| tokio::spawn(async move { h.result_within(Duration::from_secs(60)).await }))
        .collect();
    wait_for("every wait registered", Duration::from_secs(20), || async {
        c.waiting() == n as usize
    })
    .await;
    let w = workers(&c);
    for (i, t) in waiting.into_iter().enumerate() {
        assert_eq!(t.await.unwrap().unwrap(), Outcome::Succeeded(i as i64));
    }
    assert_eq!(c.waiting(), 0);
    w.shutdown().await;
}

#[tokio::test]
async fn progress_is_throttled_and_the_last_value_lands() {
    let redis = TestRedis::standalone();
    let counting = Arc::new(Flaky::new(store(&redis.url()).await, false));
    let c = client_on(counting.clone()).await;
    struct Count;
    impl JobType for Count {
        const KIND: &'static str = "count";
        type Args = u32;
        type Output = ();
    }
    let w = Worker::builder(c.clone(), "progress")
        .job(Count, |job: Job, n: u32| async move {
            // A chatty handler: 200 reports over about a second.
            for i in 1..=n {
                job.progress(serde_json::json!({ "done": i, "of": n }));
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            tokio::time::sleep(Duration::from_millis(400)).await;
            Ok::<_, JobError>(())
        })
        .start()
        .unwrap();
    let h = c.enqueue(Count, &200).await.unwrap();
    assert_eq!(
        h.result_within(Duration::from_secs(10)).await.unwrap(),
        Outcome::Succeeded(())
    );
    assert_eq!(
        h.progress().await.unwrap(),
        Some(serde_json::json!({ "done": 200, "of": 200 }))
    );
    let writes = counting
        .fcalls
        .lock()
        .unwrap()
        .iter()
        .filter(|(f, _)| *f == "ff_progress")
        .count();
    // About 1.2 s of reporting at one write per 250 ms at most.
    assert!((2..=8).contains(&writes), "{writes} progress writes");
    w.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wait_rides_through_a_server_restart() {
    let mut server = RedisServer::start_with_aof();
    let c = client(&server.url()).await;
    let h = c
        .enqueue(
            SendEmail,
            &Email {
                to: "grace@example.com".into(),
                subject: "restart".into(),
            },
        )
        .await
        .unwrap();
    let waiting = {
        let h = h.clone();
        tokio::spawn(async move { h.result_within(Duration::from_secs(30)).await })
    };
    wait_for("the wait registered", Duration::from_secs(5), || async {
        c.waiting() == 1
    })
    .await;
    tokio::task::block_in_place(|| {
        server.kill();
        std::thread::sleep(Duration::from_millis(300));
        server.restart();
    });
    // The worker runs it after the restart; the waiter hears of it.
    let w = workers(&c);
    assert_eq!(
        waiting.await.unwrap().unwrap(),
        Outcome::Succeeded("msg-0 to grace@example.com".into())
    );
    w.shutdown().await;
}

#[tokio::test]
async fn a_worker_says_when_no_engine_runs_and_when_one_does() {
    let redis = TestRedis::standalone();
    let s = store(&redis.url()).await;
    let c = client_on(s.clone()).await;
    let w = Worker::builder(c.clone(), "lonely")
        .warn_without_engine_after(Duration::from_secs(1))
        .job(
            Divide,
            |_job: Job, (a, b): (i64, i64)| async move { Ok(a / b) },
        )
        .start()
        .unwrap();
    wait_for("no engine seen", Duration::from_secs(5), || async {
        w.stats().engine_unseen.load(Relaxed) == 1
    })
    .await;
    let engine = ff_engine::Engine::start(Default::default(), s)
        .await
        .unwrap();
    wait_for("an engine seen", Duration::from_secs(5), || async {
        w.stats().engine_unseen.load(Relaxed) == 0
    })
    .await;
    w.shutdown().await;
    assert!(engine.shutdown().await);
}

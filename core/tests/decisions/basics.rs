//! Retry backoff, names, the reply reader, the state model and the data
//! plane's error codes.

use ff_core::reply::{Fields, Reply};
use ff_core::retry::{Backoff, Jitter, RetryPolicy, MAX_BACKOFF_MS, MAX_RETRIES};
use ff_core::state::{
    BlockingReason, Eligibility, LifecyclePhase, Ownership, PublicState, StateVector,
    TerminalOutcome,
};
use ff_core::{ExecutionId, FfError, Kind, Lane, Namespace, ParseError};

#[test]
fn retry_delays_are_these_exact_values() {
    // Golden: the Lua computes the same (shell's integration tests compare).
    let e = ExecutionId::new(1, 42);
    let delays =
        |p: RetryPolicy, n: u32| -> Vec<u64> { (0..n).map(|k| p.delay_ms(&e, k)).collect() };
    let exp = RetryPolicy::exponential(5, 1000, 60_000);
    assert_eq!(delays(exp, 5), [1000, 1000, 2000, 4000, 8000]);
    assert_eq!(
        delays(exp.jitter(Jitter::Full), 5),
        [166, 545, 1121, 1897, 4247]
    );
    assert_eq!(
        delays(exp.jitter(Jitter::Equal), 5),
        [583, 773, 1560, 2949, 6124]
    );
    let one = RetryPolicy::fixed(5, 1);
    assert_eq!(delays(one.jitter(Jitter::Full), 5), [0, 1, 1, 0, 1]);
    assert_eq!(delays(one.jitter(Jitter::Equal), 5), [1, 1, 1, 1, 1]);
    // A policy built by hand past the bounds: no overflow.
    let huge = RetryPolicy::fixed(5, u64::MAX);
    assert_eq!(delays(huge, 2), [u64::MAX, u64::MAX]);
    assert_eq!(
        delays(huge.jitter(Jitter::Full), 3),
        [
            3066669871262597120,
            10060144366057422848,
            10336605569745420288
        ]
    );
    assert_eq!(
        delays(huge.jitter(Jitter::Equal), 3),
        [
            10756706972486074368,
            14253444219883487232,
            14391674821727485952
        ]
    );
}

#[test]
fn exponential_backoff_edges() {
    let p = RetryPolicy::exponential(5, 3, u64::MAX);
    assert_eq!(p.backoff_ms(0), 3);
    assert_eq!(p.backoff_ms(1), 3);
    assert_eq!(p.backoff_ms(2), 6);
    assert_eq!(p.backoff_ms(63), 3 << 62);
    // Past 63 doublings the factor saturates.
    assert_eq!(p.backoff_ms(64), u64::MAX);
    assert_eq!(p.backoff_ms(u32::MAX), u64::MAX);
    assert_eq!(RetryPolicy::exponential(5, 1, 1000).backoff_ms(64), 1000);
    assert_eq!(RetryPolicy::fixed(1, 9).backoff_ms(7), 9);
}

#[test]
fn retry_policies_in_and_out_of_bounds() {
    assert_eq!(MAX_BACKOFF_MS, 2_592_000_000);
    assert_eq!(MAX_RETRIES, 10_000);
    assert_eq!(
        RetryPolicy::none(),
        RetryPolicy {
            max_retries: 0,
            backoff: Backoff::Fixed { delay_ms: 0 },
            jitter: Jitter::None
        }
    );
    assert_eq!(
        RetryPolicy::default(),
        RetryPolicy {
            max_retries: 3,
            backoff: Backoff::Exponential {
                initial_ms: 1000,
                max_ms: 60_000
            },
            jitter: Jitter::Equal
        }
    );
    let ok = [
        RetryPolicy::fixed(MAX_RETRIES, MAX_BACKOFF_MS),
        RetryPolicy::exponential(0, MAX_BACKOFF_MS, MAX_BACKOFF_MS),
        RetryPolicy::exponential(1, 0, 0),
    ];
    for p in ok {
        assert_eq!(p.validate(), Ok(()), "{p:?}");
        assert_eq!(RetryPolicy::decode(&p.encode()), Ok(p));
    }
    let bad = [
        RetryPolicy::fixed(MAX_RETRIES + 1, 0),
        RetryPolicy::fixed(0, MAX_BACKOFF_MS + 1),
        RetryPolicy::exponential(0, 2, 1),
        RetryPolicy::exponential(0, 1, MAX_BACKOFF_MS + 1),
    ];
    for p in bad {
        assert!(p.validate().is_err(), "{p:?}");
        assert!(RetryPolicy::decode(&p.encode()).is_err(), "{p:?}");
    }
    assert!(RetryPolicy::decode("10001:f:1").is_err());
    assert!(RetryPolicy::decode("4294967297:f:1").is_err());
    assert_eq!(
        RetryPolicy::decode("10000:f:1"),
        Ok(RetryPolicy::fixed(10_000, 1))
    );
    assert_eq!(
        RetryPolicy::decode("1:e:2:3:equal"),
        Ok(RetryPolicy::exponential(1, 2, 3).jitter(Jitter::Equal))
    );
    assert_eq!(
        RetryPolicy::decode("1:f:2:full"),
        Ok(RetryPolicy::fixed(1, 2).jitter(Jitter::Full))
    );
    assert_eq!(
        RetryPolicy::fixed(1, 2).jitter(Jitter::Equal).encode(),
        "1:f:2:equal"
    );
    assert_eq!(RetryPolicy::exponential(1, 2, 3).encode(), "1:e:2:3");
    for s in [
        "1:f:2:none",
        "1:f",
        "1:e:2",
        "x:f:1",
        "1:x:1",
        "1:f:2:full:full",
        "",
    ] {
        assert!(RetryPolicy::decode(s).is_err(), "{s}");
    }
}

#[test]
fn names() {
    let max = "n".repeat(ff_core::name::MAX_NAME_LEN);
    assert!(Lane::new(max.clone()).is_ok());
    assert!(matches!(
        Lane::new(format!("{max}n")),
        Err(ParseError::TooLong { .. })
    ));
    assert_eq!(
        Lane::new("").unwrap_err(),
        ParseError::Empty { kind: "lane" }
    );
    assert!(Kind::new("a-b_c.d9").is_ok());
    for (s, ch, at) in [
        ("a b", ' ', 1),
        ("a:b", ':', 1),
        ("é", 'é', 0),
        ("ab,", ',', 2),
    ] {
        assert_eq!(
            Lane::new(s).unwrap_err(),
            ParseError::BadChar {
                kind: "lane",
                ch,
                at
            }
        );
    }
    assert_eq!(Lane::default_lane().as_str(), "default");
    assert_eq!(Namespace::default_namespace().as_str(), "default");
}

#[test]
fn reply_reader() {
    assert_eq!(Reply::bulk("x"), Reply::Bulk(b"x".to_vec()));
    assert_eq!(Reply::bulk("ab").text(), Some("ab".into()));
    assert_eq!(Reply::Bulk(vec![0xff]).text(), None);
    assert_eq!(Reply::Status("OK".into()).text(), Some("OK".into()));
    assert_eq!(Reply::Int(-4).text(), Some("-4".into()));
    assert_eq!(Reply::Nil.text(), None);
    assert_eq!(Reply::Int(7).int(), Some(7));
    assert_eq!(Reply::bulk("-12").int(), Some(-12));
    assert_eq!(Reply::Status("3".into()).int(), Some(3));
    assert_eq!(Reply::bulk("x").int(), None);
    assert_eq!(Reply::Array(vec![]).int(), None);

    let items = [
        Reply::bulk("t"),
        Reply::Bulk(vec![b'a', 0xff]),
        Reply::Status("s".into()),
        Reply::Nil,
        Reply::Int(5),
        Reply::Int(6),
        Reply::Array(vec![]),
    ];
    let mut f = Fields::new("ff_t", &items);
    assert_eq!(f.remaining(), 7);
    assert_eq!(f.text("a"), Ok("t".into()));
    assert_eq!(f.lossy_text("b"), Ok("a\u{fffd}".into()));
    assert_eq!(f.bytes("c"), Ok(b"s".to_vec()));
    assert_eq!(f.bytes("d"), Ok(Vec::new()));
    assert_eq!(f.lossy_text("e"), Ok("5".into()));
    assert_eq!(f.remaining(), 2);
    assert_eq!(f.int("f"), Ok(6));
    let e = f.bytes("g").unwrap_err();
    assert_eq!(e.function, "ff_t");
    assert!(e.reason.starts_with("g is not a string"), "{}", e.reason);
    assert_eq!(f.remaining(), 0);
    let e = f.int("h").unwrap_err();
    assert_eq!(e.reason, "missing h");
    assert_eq!(f.error("why").reason, "why");
    assert_eq!(
        f.error("why").to_string(),
        "unexpected reply from ff_t: why"
    );

    let items = [
        Reply::Nil,
        Reply::Nil,
        Reply::bulk("x"),
        Reply::Array(vec![]),
    ];
    let mut f = Fields::new("ff_u", &items);
    assert!(f.text("a").unwrap_err().reason.starts_with("a is not text"));
    assert!(f
        .lossy_text("b")
        .unwrap_err()
        .reason
        .starts_with("b is not text"));
    assert!(f
        .int("c")
        .unwrap_err()
        .reason
        .starts_with("c is not an integer"));
    assert_eq!(f.next_reply("d"), Ok(&Reply::Array(vec![])));
}

#[test]
fn state_model() {
    use Eligibility::*;
    use LifecyclePhase::*;
    let v = |phase, eligibility, outcome| StateVector {
        phase,
        eligibility,
        outcome,
    };
    assert_eq!(v(Active, None, None).ownership(), Ownership::Leased);
    assert_eq!(
        v(Runnable, Some(Eligible), None).ownership(),
        Ownership::Unowned
    );
    assert_eq!(v(Suspended, None, None).ownership(), Ownership::Unowned);
    for (e, want, public) in [
        (Eligible, None, PublicState::Waiting),
        (Delayed, Some(BlockingReason::Delay), PublicState::Delayed),
        (
            WaitingChildren,
            Some(BlockingReason::Dependencies),
            PublicState::WaitingChildren,
        ),
        (
            BlockedBudget,
            Some(BlockingReason::Budget),
            PublicState::RateLimited,
        ),
        (
            BlockedQuota,
            Some(BlockingReason::Quota),
            PublicState::RateLimited,
        ),
        (
            BlockedRoute,
            Some(BlockingReason::Route),
            PublicState::Waiting,
        ),
    ] {
        assert_eq!(v(Runnable, Some(e), None).blocking_reason(), want);
        assert_eq!(v(Runnable, Some(e), None).public_state(), Some(public));
    }
    // Only a runnable execution is blocked.
    assert_eq!(v(Active, Some(Delayed), None).blocking_reason(), None);
    assert_eq!(v(Runnable, None, None).blocking_reason(), None);
    assert_eq!(v(Runnable, None, None).public_state(), None);
    assert_eq!(
        v(Active, None, None).public_state(),
        Some(PublicState::Active)
    );
    assert_eq!(
        v(Suspended, None, None).public_state(),
        Some(PublicState::Suspended)
    );
    for (o, p) in [
        (TerminalOutcome::Success, PublicState::Completed),
        (TerminalOutcome::Failed, PublicState::Failed),
        (TerminalOutcome::Cancelled, PublicState::Cancelled),
        (TerminalOutcome::Expired, PublicState::Expired),
        (TerminalOutcome::Skipped, PublicState::Skipped),
    ] {
        assert_eq!(v(Terminal, None, Some(o)).public_state(), Some(p));
        assert!(p.is_terminal());
    }
    for p in [
        PublicState::Waiting,
        PublicState::Delayed,
        PublicState::Active,
        PublicState::Suspended,
        PublicState::WaitingChildren,
        PublicState::RateLimited,
    ] {
        assert!(!p.is_terminal(), "{p}");
    }
}

#[test]
fn error_codes_decode_to_their_errors() {
    let d = "detail";
    let s = || d.to_owned();
    let cases = [
        ("not_found", FfError::NotFound),
        ("stale_lease", FfError::StaleLease),
        ("not_active", FfError::NotActive(s())),
        ("already_terminal", FfError::AlreadyTerminal(s())),
        ("not_eligible", FfError::NotEligible(s())),
        ("waitpoint_not_found", FfError::WaitpointNotFound),
        ("waitpoint_closed", FfError::WaitpointClosed(s())),
        ("invalid_token", FfError::InvalidToken(s())),
        ("no_secret", FfError::NoSecret),
        ("limit_reached", FfError::LimitReached(s())),
        ("unknown_lane", FfError::UnknownLane(s())),
        ("lane_paused", FfError::LanePaused(s())),
        ("cycle", FfError::Cycle(s())),
        ("flow_cancelled", FfError::FlowCancelled(s())),
        ("flow_ended", FfError::FlowEnded(s())),
        ("invalid_state", FfError::InvalidState(s())),
        ("too_large", FfError::TooLarge(s())),
        (
            "invalid_argument",
            FfError::InvalidArgument {
                field: s(),
                reason: String::new(),
            },
        ),
        (
            "payload_too_large",
            FfError::Other {
                code: "payload_too_large".into(),
                detail: s(),
            },
        ),
        (
            "mystery",
            FfError::Other {
                code: "mystery".into(),
                detail: s(),
            },
        ),
    ];
    for (code, want) in cases {
        assert_eq!(FfError::from_code(code, d), want, "{code}");
    }
    assert_eq!(
        FfError::from_code("payload_too_large", "2000:1000"),
        FfError::PayloadTooLarge {
            len: 2000,
            max: 1000
        }
    );
    assert_eq!(
        FfError::from_code("invalid_argument", "lane:too long: really"),
        FfError::InvalidArgument {
            field: "lane".into(),
            reason: "too long: really".into()
        }
    );
}

#[test]
fn listing_sources() {
    use ff_core::listing::{newest_first, sources, Source};
    assert_eq!(
        sources(PublicState::Waiting),
        [Source::Eligible, Source::Index("blocked_route")]
    );
    assert_eq!(sources(PublicState::Suspended), [Source::All]);
    assert_eq!(
        sources(PublicState::RateLimited),
        [
            Source::Index("blocked_budget"),
            Source::Index("blocked_quota")
        ]
    );
    assert_eq!(sources(PublicState::Skipped), [Source::Index("terminal")]);
    // Ended executions list newest first; the rest oldest (or highest) first.
    assert!(newest_first(Source::Index("terminal")));
    assert!(!newest_first(Source::Index("delayed")));
    assert!(!newest_first(Source::Eligible));
    assert!(!newest_first(Source::All));
}

#[test]
fn retry_refusals_say_why() {
    let reason = |s: &str| match RetryPolicy::decode(s) {
        Err(ParseError::Malformed { reason, .. }) => reason,
        other => panic!("{s}: {other:?}"),
    };
    assert_eq!(reason("10001:f:1"), "max_retries out of range");
    assert_eq!(reason("4294967297:f:1"), "max_retries out of range");
    assert_eq!(reason("1:f:2592000001"), "out of range");
    assert_eq!(reason("1:e:5:4"), "out of range");
    assert_eq!(reason("x:f:1"), "expected a number");
    assert!(reason("1:g:1").starts_with("expected <max>:f:<ms>"));
}

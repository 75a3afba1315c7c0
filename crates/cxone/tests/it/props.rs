//! Property tests of the URL validators (10,000 cases each), and a run of the whole client
//! against a mock tenant that answers random statuses, headers and bytes: every call
//! ends in `Ok` or an error, quickly, and nothing panics.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderName, HeaderValue, Response, StatusCode};
use axum::routing::any as any_route;
use cxone::{Client, Grant, RetryPolicy, Settings};
use proptest::prelude::*;
use secrecy::SecretString;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 10_000,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

fn url_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "(https?|ftp|file)://[ -~]{0,40}",
        "https?://[a-z0-9.-]{1,20}(:[0-9]{1,6})?(/[ -~]{0,20})?",
        "https?://\\[[0-9a-f:]{0,20}\\](:[0-9]{0,6})?/?",
    ]
}

fn grant() -> Grant {
    Grant::ClientCredentials {
        client_id: "id".into(),
        client_secret: SecretString::from("s"),
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn urls_validate_without_panic(s in url_text()) {
        match cxone::parse_http_url("token_url", &s) {
            Ok(u) => {
                prop_assert!(matches!(u.scheme(), "http" | "https"));
                prop_assert!(u.host().is_some());
                let _ = cxone::check_transport_security("token_url", &u, false);
            }
            Err(e) => prop_assert!(e.to_string().starts_with("token_url: "), "{}", e),
        }
        if let Ok(u) = cxone::parse_base_url("base_url", &s) {
            prop_assert!(u.path().ends_with('/'));
        }
        if let Ok(settings) = Settings::new(&s, grant()) {
            let _ = settings.clone().issuer(&s);
            let _ = settings.token_url(&s).map(|x| x.validate());
        }
    }
}

/// One random answer.
#[derive(Debug, Clone)]
struct Answer {
    status: u16,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
}

fn random_answer(rng: &mut fastrand::Rng) -> Answer {
    let status = match rng.u8(0..10) {
        0 => 200,
        1 => 429,
        2 => 401,
        3 => 403,
        4 => rng.u16(300..400),
        5 => rng.u16(500..600),
        _ => rng.u16(200..600),
    };
    let names = [
        "retry-after",
        "ratelimit-limit",
        "ratelimit-remaining",
        "ratelimit-reset",
        "location",
        "www-authenticate",
        "etag",
        "content-type",
        "x-request-id",
    ];
    let mut headers = Vec::new();
    for _ in 0..rng.usize(0..5) {
        let name = names[rng.usize(0..names.len())].to_string();
        let value: Vec<u8> = match rng.u8(0..4) {
            0 => rng.u64(..).to_string().into_bytes(),
            1 => "18446744073709551615999".into(),
            2 => "Bearer error=\"insufficient_scope\", scope=\"".into(),
            _ => (0..rng.usize(0..30)).map(|_| rng.u8(0x20..0x7f)).collect(),
        };
        headers.push((name, value));
    }
    let body: Vec<u8> = match rng.u8(0..6) {
        0 => br#"{"access_token":"t","expires_in":18446744073709551615,"scope":"contact:read"}"#
            .to_vec(),
        1 => br#"{"access_token":"t","expires_in":-1e308}"#.to_vec(),
        2 => br#"[]"#.to_vec(),
        3 => br#"{"contacts":[],"pageToken":null}"#.to_vec(),
        _ => (0..rng.usize(0..200)).map(|_| rng.u8(..)).collect(),
    };
    Answer {
        status,
        headers,
        body,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_survives_a_tenant_answering_random_bytes() {
    let seed = 20261129;
    let rng = Arc::new(Mutex::new(fastrand::Rng::with_seed(seed)));
    let r2 = rng.clone();
    let app = Router::new().fallback(any_route(move || {
        let a = random_answer(&mut r2.lock().unwrap());
        async move {
            let mut resp = Response::new(Body::from(a.body));
            *resp.status_mut() = StatusCode::from_u16(a.status).unwrap_or(StatusCode::OK);
            for (k, v) in a.headers {
                if let (Ok(k), Ok(v)) = (
                    HeaderName::from_bytes(k.as_bytes()),
                    HeaderValue::from_bytes(&v),
                ) {
                    resp.headers_mut().append(k, v);
                }
            }
            resp
        }
    }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let mut calls = 0;
    let start = Instant::now();
    for round in 0..150 {
        // A fresh client each round, so the token endpoint is fuzzed too.
        let mut s = crate::hostile::mock_settings(&base);
        s.retry = RetryPolicy {
            max_attempts: 3,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(5),
            deadline: Duration::from_millis(300),
        };
        let client = Client::new(s).unwrap();
        for _ in 0..4 {
            let t = Instant::now();
            let kind = rng.lock().unwrap().u8(0..5);
            let outcome = match kind {
                0 => client.secrets().list().await.map(|_| ()),
                1 => client.contacts().get("c-0000001").await.map(|_| ()),
                2 => client
                    .contacts()
                    .list()
                    .page_size(cxone::PageSize::new(10).unwrap())
                    .page(None)
                    .await
                    .map(|_| ()),
                3 => client.require_scopes(&["contact:read"]).await,
                _ => client.data_actions().get("da-1").await.map(|_| ()),
            };
            calls += 1;
            if let Err(e) = &outcome {
                // Every error renders, classifies and answers its questions.
                let _ = (e.to_string(), e.stage(), e.is_retryable(), e.status());
            }
            assert!(
                t.elapsed() < Duration::from_secs(5),
                "round {round} (seed {seed}): a call took {:?}",
                t.elapsed()
            );
        }
    }
    println!(
        "{calls} calls against random answers in {:?}",
        start.elapsed()
    );
}

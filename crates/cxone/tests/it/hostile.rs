//! What a strict or hostile tenant can send, and what the client must do: use every
//! configured URL exactly as written, follow no redirect, believe no number without a
//! bound, accept no body without a cap, and never panic.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use cxone::{Client, Error, Grant, RetryPolicy, Settings};
use cxone_sim::SimConfig;
use secrecy::SecretString;

use crate::{settings, sim, small};

/// Serves `router` on a free loopback port; returns `http://127.0.0.1:PORT`.
async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    format!("http://{addr}")
}

/// Counts every connection made to a listener that never answers anything.
async fn counting_listener() -> (String, Arc<AtomicU64>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hits = Arc::new(AtomicU64::new(0));
    let h = hits.clone();
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            h.fetch_add(1, Ordering::SeqCst);
            drop(sock);
        }
    });
    (format!("http://{addr}"), hits)
}

/// Settings for a mock tenant at `base`: quick retries, a 2 s request timeout.
pub(crate) fn mock_settings(base: &str) -> Settings {
    let grant = Grant::ClientCredentials {
        client_id: "id".into(),
        client_secret: SecretString::from("mock-secret"),
    };
    let mut s = Settings::new(base, grant).unwrap();
    s.retry = RetryPolicy {
        max_attempts: 3,
        base_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(50),
        deadline: Duration::from_secs(10),
    };
    s.request_timeout = Duration::from_secs(2);
    s
}

fn token_ok(expires_in: &'static str) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        format!(
            r#"{{"access_token":"t0k","token_type":"Bearer","expires_in":{expires_in},"scope":"integration:secret:read"}}"#
        ),
    )
        .into_response()
}

#[tokio::test]
async fn a_token_url_without_a_trailing_slash_is_requested_exactly() {
    let sim = sim(SimConfig {
        token_path: Some("/auth/token".into()),
        ..small()
    })
    .await;
    assert!(sim.token_url().ends_with("/auth/token"));
    let s = settings(&sim).token_url(&sim.token_url()).unwrap();
    assert!(s.token_url.as_str().ends_with("/auth/token"));
    let client = Client::new(s).unwrap();
    client.secrets().list().await.unwrap();
    assert_eq!(sim.control().token_requests_total(), 1);
    // The spec's default path is not served by this tenant: only the configured one works.
    let c = Client::new(settings(&sim)).unwrap();
    let e = c.authenticate().await.unwrap_err();
    assert!(e.to_string().contains("oauth/token"), "{e}");
}

#[tokio::test]
async fn an_issuer_names_the_token_endpoint_through_discovery() {
    let sim = sim(SimConfig {
        token_path: Some("/auth/token".into()),
        ..small()
    })
    .await;
    // token_url still points at the default path, which this tenant does not serve:
    // only discovery can find the right one.
    let s = settings(&sim).issuer(&sim.base_url()).unwrap();
    let client = Client::new(s).unwrap();
    client.secrets().list().await.unwrap();
    assert_eq!(sim.control().token_requests_total(), 1);
}

#[tokio::test]
async fn a_discovery_document_for_another_issuer_is_refused() {
    let base = serve(Router::new().route(
        "/.well-known/openid-configuration",
        get(|| async {
            axum::Json(serde_json::json!({
                "issuer": "https://evil.example",
                "token_endpoint": "https://evil.example/token"
            }))
        }),
    ))
    .await;
    let s = mock_settings(&base).issuer(&base).unwrap();
    let e = Client::new(s).unwrap().authenticate().await.unwrap_err();
    assert!(matches!(e, Error::Discovery { .. }), "{e}");
    assert!(e.to_string().contains("evil.example"), "{e}");
}

#[tokio::test]
async fn an_absurd_token_lifetime_is_capped_not_a_panic() {
    let requests = Arc::new(AtomicU64::new(0));
    let r = requests.clone();
    let base = serve(Router::new().route(
        "/oauth/token",
        post(move || {
            r.fetch_add(1, Ordering::SeqCst);
            async { token_ok("18446744073709551615") }
        }),
    ))
    .await;
    let client = Client::new(mock_settings(&base)).unwrap();
    client.authenticate().await.unwrap();
    client.authenticate().await.unwrap();
    assert_eq!(requests.load(Ordering::SeqCst), 1, "the token is cached");
}

#[tokio::test]
async fn a_huge_retry_after_fails_at_once_naming_it() {
    let hits = Arc::new(AtomicU64::new(0));
    let h = hits.clone();
    let base = serve(
        Router::new()
            .route("/oauth/token", post(|| async { token_ok("3600") }))
            .fallback(any(move || {
                h.fetch_add(1, Ordering::SeqCst);
                async {
                    (
                        StatusCode::TOO_MANY_REQUESTS,
                        [(header::RETRY_AFTER, "18446744073709551615")],
                        "{}",
                    )
                }
            })),
    )
    .await;
    let client = Client::new(mock_settings(&base)).unwrap();
    let start = Instant::now();
    let e = client.secrets().list().await.unwrap_err();
    assert!(start.elapsed() < Duration::from_secs(5));
    assert!(matches!(e, Error::RetryAfterBeyondDeadline { .. }), "{e}");
    assert!(
        e.to_string().contains("Retry-After 18446744073709551615"),
        "{e}"
    );
    assert_eq!(hits.load(Ordering::SeqCst), 1, "no retry was attempted");
}

#[tokio::test]
async fn a_redirecting_token_endpoint_gets_nothing_sent_onward() {
    let (elsewhere, hits) = counting_listener().await;
    let target = format!("{elsewhere}/oauth/token");
    let base = serve(Router::new().route(
        "/oauth/token",
        post(move || {
            let target = target.clone();
            async move {
                (
                    StatusCode::TEMPORARY_REDIRECT,
                    [(header::LOCATION, target)],
                    "",
                )
            }
        }),
    ))
    .await;
    let client = Client::new(mock_settings(&base)).unwrap();
    let e = client.authenticate().await.unwrap_err();
    assert!(matches!(e, Error::Redirect { status: 307, .. }), "{e}");
    assert!(e.to_string().contains(&elsewhere), "{e}");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        hits.load(Ordering::SeqCst),
        0,
        "the other port received nothing"
    );
}

#[tokio::test]
async fn a_redirecting_api_gets_no_token_sent_onward() {
    let (elsewhere, hits) = counting_listener().await;
    let target = format!("{elsewhere}/api");
    let base = serve(
        Router::new()
            .route("/oauth/token", post(|| async { token_ok("3600") }))
            .fallback(any(move || {
                let target = target.clone();
                async move { (StatusCode::FOUND, [(header::LOCATION, target)], "") }
            })),
    )
    .await;
    let client = Client::new(mock_settings(&base)).unwrap();
    let e = client.secrets().list().await.unwrap_err();
    assert!(matches!(e, Error::Redirect { status: 302, .. }), "{e}");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(hits.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_body_over_the_cap_is_refused() {
    let base = serve(
        Router::new()
            .route("/oauth/token", post(|| async { token_ok("3600") }))
            .fallback(any(|| async {
                // Streamed without a Content-Length: the cap must hold while reading.
                let chunks = (0..64).map(|_| Ok::<_, std::io::Error>(vec![b' '; 64 * 1024]));
                axum::body::Body::from_stream(futures_util::stream::iter(chunks))
            })),
    )
    .await;
    let mut s = mock_settings(&base);
    s.max_body = 1 << 20;
    let client = Client::new(s).unwrap();
    let e = client.secrets().list().await.unwrap_err();
    assert!(matches!(e, Error::TooLarge { .. }), "{e}");
}

#[tokio::test]
async fn dot_ids_are_refused_before_any_request() {
    let sim = sim(small()).await;
    let client = Client::new(settings(&sim)).unwrap();
    for id in [".", ".."] {
        let e = client.contacts().get(id).await.unwrap_err();
        assert!(matches!(e, Error::Build(_)), "{e}");
    }
    assert_eq!(sim.control().token_requests_total(), 0);
}

#[tokio::test]
async fn missing_scopes_are_named_before_any_other_request() {
    let sim = sim(small()).await;
    let c = sim.credentials();
    let grant = Grant::ClientCredentials {
        client_id: c.readonly_client_id.clone(),
        client_secret: c.readonly_client_secret.clone().into(),
    };
    let s = Settings::new(&sim.base_url(), grant).unwrap();
    let client = Client::new(s).unwrap();
    let e = client
        .require_scopes(&["contact:read", "contact:write"])
        .await
        .unwrap_err();
    assert!(e.is_missing_scope(), "{e}");
    assert!(e.to_string().contains("contact:write"), "{e}");
    assert!(!e.to_string().contains("contact:write,"), "{e}");
    client.require_scopes(&["contact:read"]).await.unwrap();
    assert_eq!(sim.control().route_hits("GET /api/v1/contacts"), 0);
}

#[tokio::test]
async fn a_failing_token_endpoint_is_not_asked_again_at_once() {
    let requests = Arc::new(AtomicU64::new(0));
    let r = requests.clone();
    let base = serve(Router::new().route(
        "/oauth/token",
        post(move |_h: HeaderMap| {
            r.fetch_add(1, Ordering::SeqCst);
            async {
                (
                    StatusCode::UNAUTHORIZED,
                    axum::Json(serde_json::json!({"error": "invalid_client"})),
                )
            }
        }),
    ))
    .await;
    let client = Client::new(mock_settings(&base)).unwrap();
    for _ in 0..20 {
        let e = client.authenticate().await.unwrap_err();
        assert!(e.is_auth(), "{e}");
    }
    assert_eq!(requests.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_token_endpoint_that_never_answers_times_out() {
    let base = serve(Router::new().route(
        "/oauth/token",
        post(|| async {
            tokio::time::sleep(Duration::from_secs(60)).await;
            ""
        }),
    ))
    .await;
    let mut s = mock_settings(&base);
    s.request_timeout = Duration::from_millis(300);
    s.retry.max_attempts = 1;
    let start = Instant::now();
    let e = Client::new(s).unwrap().authenticate().await.unwrap_err();
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
    let last = match &e {
        Error::GaveUp { last, .. } => last.as_ref(),
        other => other,
    };
    assert!(matches!(last, Error::Timeout { .. }), "{e}");
    assert!(e.to_string().contains("300ms"), "{e}");
}

#[tokio::test]
async fn an_api_call_that_never_answers_times_out() {
    let base = serve(
        Router::new()
            .route("/oauth/token", post(|| async { token_ok("3600") }))
            .fallback(any(|| async {
                tokio::time::sleep(Duration::from_secs(60)).await;
                ""
            })),
    )
    .await;
    let mut s = mock_settings(&base);
    s.request_timeout = Duration::from_millis(300);
    s.retry.max_attempts = 1;
    let client = Client::new(s).unwrap();
    client.authenticate().await.unwrap();
    let start = Instant::now();
    let e = client.secrets().list().await.unwrap_err();
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
    assert!(matches!(e, Error::Timeout { .. }), "{e}");
    assert!(e.to_string().contains("300ms"), "{e}");
}

/// `https://` means TLS: a tenant address that answers in plain HTTP gets a failed
/// handshake, never the request (nor its token) in clear.
#[tokio::test]
async fn an_https_base_url_is_spoken_to_in_tls_only() {
    let api = Arc::new(AtomicU64::new(0));
    let seen = api.clone();
    let plain = serve(
        Router::new()
            .route("/oauth/token", post(|| async { token_ok("3600") }))
            .fallback(any(move || {
                seen.fetch_add(1, Ordering::SeqCst);
                async { "[]" }
            })),
    )
    .await;
    let mut s = mock_settings(&plain.replace("http://", "https://"))
        .token_url(&format!("{plain}/oauth/token"))
        .unwrap();
    s.retry.max_attempts = 2;
    let e = Client::new(s).unwrap().secrets().list().await.unwrap_err();
    assert_eq!(e.stage(), cxone::Stage::Transport, "{e}");
    assert!(e.to_string().contains("connection failed"), "{e}");
    assert_eq!(
        api.load(Ordering::SeqCst),
        0,
        "nothing reached the API in clear"
    );
}

//! CXone's GDPR erasure route (spec §9), and its `{"code","details","errors"}` errors.

use cxone::privacy::SubjectKind;

use crate::{client, sim, small};

#[tokio::test]
async fn an_erasure_is_filed_once_per_call_and_a_refusal_reads_cleanly() {
    let sim = sim(small()).await;
    let client = client(&sim);
    let a = client
        .privacy()
        .erasure("ann@example.com", SubjectKind::Email)
        .await
        .unwrap();
    let b = client
        .privacy()
        .erasure("+14155550100", SubjectKind::Phone)
        .await
        .unwrap();
    assert_ne!(a, b, "each request gets its own requestId");
    let seen = sim.control().erasures();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0]["requestId"], a.as_str());
    assert_eq!(seen[0]["subjectIdentifier"], "ann@example.com");
    assert_eq!(seen[0]["subjectIdentifierType"], "EMAIL");
    assert_eq!(seen[1]["subjectIdentifierType"], "PHONENO");

    // Refused in the real tenants' shape: shown as cleanly as a problem document, and
    // not retried (a 400 is final), nothing recorded.
    for (id, kind, field) in [
        ("4155550100", SubjectKind::Phone, "subjectIdentifier"),
        ("ann@", SubjectKind::Email, "subjectIdentifier"),
    ] {
        let e = client.privacy().erasure(id, kind).await.unwrap_err();
        assert_eq!(e.status(), Some(400));
        let text = e.to_string();
        assert!(
            text.contains("InvalidRequest: subjectIdentifier: "),
            "{text}"
        );
        let p = e.problem().unwrap();
        assert_eq!(p.errors[0].field, field);
    }
    assert_eq!(sim.control().erasures().len(), 2);
    assert_eq!(sim.control().route_hits("POST /privacy/v1/erasure"), 4);
}

#[test]
fn errors_given_as_plain_strings_are_kept() {
    let p: cxone::Problem = serde_json::from_value(serde_json::json!({
        "code": "Forbidden",
        "details": "scope privacy:erasure:write required",
        "errors": ["missing scope", {"field": "x", "message": "y"}, 7],
    }))
    .unwrap();
    assert_eq!(
        p.to_string(),
        "Forbidden: scope privacy:erasure:write required"
    );
    assert_eq!(p.errors.len(), 2);
    assert_eq!(p.errors[0].message, "missing scope");
}

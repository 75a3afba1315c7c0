//! CORS origins: parsed with the WHATWG URL parser (`url`), then held to spec §7's
//! `scheme://host[:port]` — https, or http only for loopback; no path (not even `/`),
//! query, fragment, userinfo or wildcard — and normalized: IDNs to punycode, host to
//! lowercase, a default port dropped.

/// `origin` normalized, or why it is not an origin cxguard will deploy.
pub fn normalize(origin: &str) -> Result<String, String> {
    if origin.is_empty() {
        return Err("is empty".into());
    }
    if origin.len() > 2048 {
        return Err(format!(
            "is {} bytes long; an origin is short",
            origin.len()
        ));
    }
    if origin.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("contains whitespace or a control character".into());
    }
    if origin.contains('*') {
        return Err("wildcards are not allowed: list each origin".into());
    }
    let Some((scheme, rest)) = origin.split_once("://") else {
        return Err("is not scheme://host[:port]".into());
    };
    if rest.contains('@') {
        return Err("userinfo (user@) is not allowed".into());
    }
    if let Some(c) = rest.chars().find(|c| matches!(c, '/' | '?' | '#' | '\\')) {
        return Err(match c {
            '/' | '\\' => "has a path (even a trailing /): an origin is scheme://host[:port]",
            '?' => "has a query: an origin is scheme://host[:port]",
            _ => "has a fragment: an origin is scheme://host[:port]",
        }
        .into());
    }
    // The URL parser reads `host:` as the host with no port; an origin's port, when
    // there is a colon, is digits.
    if rest.ends_with(':') {
        return Err("has an empty port: an origin is scheme://host[:port]".into());
    }
    let url = url::Url::parse(origin).map_err(|e| format!("is not a URL: {e}"))?;
    let host = match url.host() {
        Some(url::Host::Domain(d)) => {
            check_domain(d)?;
            d.to_string()
        }
        Some(url::Host::Ipv4(a)) => a.to_string(),
        Some(url::Host::Ipv6(a)) => format!("[{a}]"),
        None => return Err("has no host".into()),
    };
    let loopback = matches!(host.as_str(), "localhost" | "127.0.0.1" | "[::1]");
    match scheme.to_ascii_lowercase().as_str() {
        "https" => {}
        "http" if loopback => {}
        "http" => {
            return Err(
                "http is allowed only for localhost, 127.0.0.1 and [::1]; use https".into(),
            );
        }
        other => return Err(format!("scheme {other} is not allowed; use https")),
    }
    Ok(match url.port() {
        Some(p) => format!("{}://{host}:{p}", url.scheme()),
        None => format!("{}://{host}", url.scheme()),
    })
}

/// A DNS name as browsers send it in `Origin`: labels of letters, digits and inner
/// hyphens (punycode included), 1–63 characters each, 253 in all.
fn check_domain(d: &str) -> Result<(), String> {
    let d = d.strip_suffix('.').unwrap_or(d);
    if d.is_empty() || d.len() > 253 {
        return Err("the host is not a DNS name".into());
    }
    for label in d.split('.') {
        let ok = !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if !ok {
            return Err(format!(
                "the host label {label:?} is not a DNS label (letters, digits, inner hyphens, 1–63 characters)"
            ));
        }
    }
    if d.rsplit('.')
        .next()
        .is_some_and(|tld| tld.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err("the host is neither a DNS name nor an IP address".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::normalize;

    #[test]
    fn good_origins_normalize() {
        for (input, want) in [
            ("https://www.example.com", "https://www.example.com"),
            ("https://WWW.Example.COM", "https://www.example.com"),
            (
                "https://support.example.com:8443",
                "https://support.example.com:8443",
            ),
            ("https://example.com:443", "https://example.com"),
            ("https://bücher.example", "https://xn--bcher-kva.example"),
            ("https://例え.jp", "https://xn--r8jz45g.jp"),
            ("http://localhost:3000", "http://localhost:3000"),
            ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
            ("http://[::1]:8080", "http://[::1]:8080"),
            ("HTTPS://shop.example.com", "https://shop.example.com"),
        ] {
            assert_eq!(normalize(input).as_deref(), Ok(want), "{input}");
        }
    }

    /// Regression (trust review, item 12): `https://example.com:` was accepted.
    #[test]
    fn an_empty_port_is_refused() {
        for o in ["https://example.com:", "http://127.0.0.1:", "http://[::1]:"] {
            let why = normalize(o).unwrap_err();
            assert!(why.contains("empty port"), "{o}: {why}");
        }
        assert_eq!(
            normalize("https://example.com:8443").unwrap(),
            "https://example.com:8443"
        );
    }

    #[test]
    fn bad_origins_are_refused_with_a_reason() {
        for (input, why) in [
            ("https://-.", "DNS label"),
            ("https://-example.com", "DNS label"),
            ("https://www.example.com/", "trailing /"),
            ("https://www.example.com/path", "path"),
            ("https://www.example.com?x=1", "query"),
            ("https://www.example.com#top", "fragment"),
            ("https://user:pw@example.com", "userinfo"),
            ("https://*.example.com", "wildcard"),
            ("http://www.example.com", "use https"),
            ("http://10.0.0.1", "use https"),
            ("ftp://example.com", "scheme ftp"),
            ("javascript://example.com", "scheme javascript"),
            ("www.example.com", "scheme://"),
            ("https://", "not a URL"),
            ("https://exa mple.com", "whitespace"),
            ("https://a_b.example.com", "DNS label"),
            ("", "empty"),
            ("https://example.com:99999", "not a URL"),
        ] {
            let e = normalize(input).expect_err(input);
            assert!(e.contains(why), "{input}: {e}");
        }
    }
}

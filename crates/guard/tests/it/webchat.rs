//! The webchat pattern validator against an evasion corpus (OWASP's XSS filter evasion
//! cheat sheet and its encodings), ordinary patterns that merely contain `on`, `script`
//! or `eval`, and random input.

use guard::webchat::policy::pattern_problem;
use proptest::prelude::*;

/// Refused: each carries a script vector under some encoding.
pub const EVASIONS: &[&str] = &[
    "<script>alert(1)</script>",
    "<ScRiPt>alert(1)</ScRiPt>",
    "<SCRIPT SRC=http://xss.rocks/xss.js></SCRIPT>",
    "<script/xss src=x>",
    "<<SCRIPT>alert(\"XSS\");//<</SCRIPT>",
    "&lt;script&gt;alert(1)&lt;/script&gt;",
    "&LT;script&GT;",
    "&ltscript&gt",
    "&#60;script&#62;",
    "&#60script",
    "&#0000060script",
    "&#x3C;script",
    "&#x3cscript",
    "&#X3C;ScRiPt",
    "&#x00003C;script",
    "%3Cscript%3E",
    "%3cScRiPt%3e",
    "%253Cscript%253E",
    "%25253Cscript",
    "%u003Cscript",
    "\\x3cscript\\x3e",
    "\\u003cscript",
    "&amp;lt;script&amp;gt;",
    "%26lt%3Bscript",
    "&#37;3Cscript",
    "＜script＞",
    "<scr\tipt>",
    "<scr\nipt>",
    "<scr\0ipt>",
    "<scr&#9;ipt>",
    "<scr%09ipt>",
    "<scr%00ipt>",
    "javascript:alert(1)",
    "JaVaScRiPt:alert(1)",
    "java\tscript:alert(1)",
    "java&#x09;script:alert(1)",
    "jav&#x0A;ascript:alert(1)",
    "jav&#x0D;ascript:alert(1)",
    " &#14;  javascript:alert(1)",
    "&#106;&#97;&#118;&#97;&#115;&#99;&#114;&#105;&#112;&#116;&#58;alert(1)",
    "&#0000106&#0000097&#0000118&#0000097&#0000115&#0000099&#0000114&#0000105&#0000112&#0000116&#0000058alert(1)",
    "&#x6A&#x61&#x76&#x61&#x73&#x63&#x72&#x69&#x70&#x74&#x3A",
    "%6A%61%76%61%73%63%72%69%70%74%3Aalert(1)",
    "javascript&colon;alert(1)",
    "vbscript:msgbox(1)",
    "VBScript:Execute(1)",
    "data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==",
    "DATA:TEXT/HTML,<b>x</b>",
    "<IMG SRC=x onerror=alert(1)>",
    "<img src=x OnErRoR=alert(1)>",
    "<body onload=alert(1)>",
    "<BODY ONLOAD = alert(1)>",
    "x\" onmouseover=\"alert(1)",
    "x'onfocus='alert(1)",
    "/path?x=1 onclick=go()",
    "&#111;nerror=alert(1)",
    "%6Fnerror=alert(1)",
    "<svg/onload=alert(1)>",
    "<svg><script>alert(1)</script>",
    "<iframe src=javascript:alert(1)>",
    "<IFRAME SRC=# onmouseover=alert(1)></IFRAME>",
    "<object data=x>",
    "<embed src=x>",
    "<frame src=x>",
    "<math><mtext>",
    "<style>@import'x';</style>",
    "<link rel=stylesheet href=x>",
    "<meta http-equiv=refresh content=0>",
    "<base href=x>",
    "<form action=x>",
    "<iframe srcdoc=x>",
    "eval(atob('YWxlcnQoMSk='))",
    "EVAL(x)",
    "e v a l(x)",
    "/x;eval(name)",
    "width: expression(alert(1))",
    "xss:expr/*XSS*/ession(alert(1))",
    "setTimeout('alert(1)')",
    "-moz-binding:url(x)",
    "%3Ciframe%20src%3Dx%3E",
    "&lt;iframe",
    "&#x3c;object",
    "%3Cembed",
    "&#60;svg onload=x>",
];

/// Accepted: ordinary URL patterns whose words contain the keywords.
pub const ORDINARY: &[&str] = &[
    "/onboarding/*",
    "/descriptions/*",
    "/medieval(1)",
    "/admin/*",
    "(?i)bot|crawler",
    ".*",
    "^/shop/",
    "/on/*",
    "/online/*",
    "/one-time/*",
    "/donation?step=2",
    "/subscriptions/*",
    "/script-writing/*",
    "/postscript/*",
    "/manuscripts/*",
    "/evaluation/*",
    "/retrieval(v2)",
    "/javascript-course/*",
    "/blog/expressions/*",
    "/expression-of-interest",
    "/conversation?mode=onsite",
    "/icons/onion.svg",
    "/medieval-history/*",
    "/a%20b",
    "/search?q=on+hold",
    "/p/&amp;/x",
    "/reports/2024-Q1",
    "/phone/+1*",
];

#[test]
fn every_evasion_is_refused_naming_the_decoded_form() {
    assert!(EVASIONS.len() >= 40);
    for p in EVASIONS {
        let why = pattern_problem(p).unwrap_or_else(|| panic!("{p:?} was accepted"));
        assert!(
            why.contains("script vector") || why.contains("control character"),
            "{p:?}: {why}"
        );
    }
}

#[test]
fn ordinary_patterns_with_the_words_are_accepted() {
    assert!(ORDINARY.len() >= 20);
    for p in ORDINARY {
        assert_eq!(pattern_problem(p), None, "{p:?}");
    }
}

fn entity_encode(s: &str) -> String {
    s.chars().map(|c| format!("&#{};", c as u32)).collect()
}

fn percent_encode(s: &str) -> String {
    s.bytes().map(|b| format!("%{b:02X}")).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn no_input_makes_the_validator_panic(s in "\\PC{0,300}", raw in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = pattern_problem(&s);
        let _ = pattern_problem(&String::from_utf8_lossy(&raw));
        let _ = guard::webchat::origin::normalize(&s);
    }

    #[test]
    fn a_refused_pattern_encoded_once_more_is_still_refused(i in 0..EVASIONS.len(), how in 0..3u8) {
        let p = EVASIONS[i];
        // Only the script vectors: a control character is refused by itself.
        prop_assume!(!p.chars().any(char::is_control));
        let again = match how {
            0 => entity_encode(p),
            1 => percent_encode(p),
            _ => p.replace('<', "&lt;").replace(':', "%3A"),
        };
        prop_assert!(pattern_problem(&again).is_some(), "{again:?}");
    }
}

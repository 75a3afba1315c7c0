//! `cxguard report`: the demo's report rendered by headless Chromium (DOM, screenshot,
//! PDF, no CSP violation, no request), its JSON valid against the committed schema and
//! in agreement with the HTML, tenant strings escaped, and an empty ledger reported as
//! "never run".

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::harness::Harness;
use crate::{cxguard, stderr, stdout, tmp};

/// Chromium, if installed (`.ci/run` installs it; under CI it must be there).
fn chromium() -> Option<PathBuf> {
    for name in ["chromium", "chromium-browser", "google-chrome"] {
        if let Ok(o) = Command::new("which").arg(name).output()
            && o.status.success()
        {
            return Some(PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
        }
    }
    assert!(
        std::env::var("CI").is_err(),
        "CI must run the report's browser test: install chromium"
    );
    None
}

/// Headless Chromium on `page` with `args`; its stdout and its log.
fn headless(bin: &Path, profile: &Path, page: &Path, args: &[&str]) -> (Vec<u8>, String) {
    let o = Command::new(bin)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("chromium runs");
    assert!(o.status.success(), "{}", stderr(&o));
    let log = stderr(&o);
    (o.stdout, log)
}

/// The share of pixels unlike the background in each of `bands` horizontal bands of a
/// PNG, computed by Python's standard library (zlib), independently of the report.
fn ink_per_band(png: &Path, bands: usize) -> Vec<f64> {
    let script = r#"
import struct, sys, zlib
data = open(sys.argv[1], 'rb').read()
pos, idat, w, h, ct = 8, b'', 0, 0, 0
while pos < len(data):
    n, kind = struct.unpack('>I4s', data[pos:pos + 8]); body = data[pos + 8:pos + 8 + n]; pos += 12 + n
    if kind == b'IHDR': w, h, depth, ct = struct.unpack('>IIBB', body[:10])
    if kind == b'IDAT': idat += body
bpp = {2: 3, 6: 4}[ct]; raw = zlib.decompress(idat); stride = w * bpp
rows, prev, i = [], bytearray(stride), 0
for _ in range(h):
    f = raw[i]; line = bytearray(raw[i + 1:i + 1 + stride]); i += 1 + stride
    for x in range(stride):
        a = line[x - bpp] if x >= bpp else 0; b = prev[x]; c = prev[x - bpp] if x >= bpp else 0
        if f == 1: line[x] = (line[x] + a) & 255
        elif f == 2: line[x] = (line[x] + b) & 255
        elif f == 3: line[x] = (line[x] + (a + b) // 2) & 255
        elif f == 4:
            p = a + b - c; pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
    rows.append(line); prev = line
bands = int(sys.argv[2]); bg = tuple(rows[0][0:3]); out = []
for k in range(bands):
    ink = total = 0
    for y in range(k * h // bands, (k + 1) * h // bands, 2):
        r = rows[y]
        for x in range(0, stride, bpp * 2):
            total += 1; ink += tuple(r[x:x + 3]) != bg
    out.append(ink / total)
print(' '.join(str(v) for v in out))
"#;
    let o = Command::new("python3")
        .args(["-c", script])
        .arg(png)
        .arg(bands.to_string())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    stdout(&o)
        .split_whitespace()
        .map(|v| v.parse().unwrap())
        .collect()
}

fn validate_schema(doc: &Path) {
    let schema = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/schemas/report.json");
    let o = Command::new("python3")
        .args([
            "-c",
            "import json, sys, jsonschema; jsonschema.validate(json.load(open(sys.argv[1])), json.load(open(sys.argv[2])))",
        ])
        .arg(doc)
        .arg(schema)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "the JSON does not match its schema: {}",
        stderr(&o)
    );
}

#[test]
fn the_demo_report_renders_in_chromium_and_agrees_with_its_json() {
    let work = tmp();
    let o = cxguard(
        &["demo", "--output", "json", "--contacts", "300"],
        &[],
        work.path(),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let page = PathBuf::from(v["report"].as_str().unwrap());
    let dir = page.parent().unwrap().to_path_buf();
    let html = std::fs::read_to_string(&page).unwrap();
    let json_path = dir.join("report.json");
    validate_schema(&json_path);
    let facts: Value = serde_json::from_str(&std::fs::read_to_string(&json_path).unwrap()).unwrap();

    // The HTML says what the JSON says: every card's number, and the chain head.
    for card in facts["summary"].as_array().unwrap() {
        let needle = format!(
            "data-metric=\"{}\" data-value=\"{}\"",
            card["metric"].as_str().unwrap(),
            card["value"]
        );
        assert!(html.contains(&needle), "{needle} not in the HTML");
    }
    // And every number of the sections' data tables.
    for s in facts["secrets"]["items"].as_array().unwrap() {
        let row = format!(
            "<td class=\"mono\">{}</td><td>{}</td><td>{}</td><td>{}</td>",
            s["id"].as_str().unwrap(),
            s["name"].as_str().unwrap(),
            s["ageDays"],
            s["maxAgeDays"]
        );
        assert!(html.contains(&row), "{row} not in the HTML");
    }
    for t in facts["datastores"].as_array().unwrap() {
        let row = format!(
            "<td class=\"mono\">{}</td><td>{}</td><td>{}</td><td>{}</td>",
            t["table"].as_str().unwrap(),
            t["sensitiveEncrypted"],
            t["sensitiveInClear"],
            t["other"]
        );
        assert!(html.contains(&row), "{row} not in the HTML");
    }
    for (day, n) in facts["contacts"]["perDay"].as_object().unwrap() {
        let row = format!("<td>{day}</td><td>{n}</td>");
        assert!(html.contains(&row), "{row} not in the HTML");
    }
    let d = &facts["delivery"];
    let row = format!(
        "<td>{}</td><td>{}</td><td>{}</td><td>{}</td>",
        d["delivered"], d["pending"], d["dead"], d["skipped"]
    );
    assert!(html.contains(&row), "{row} not in the HTML");
    // The head is the one the ledger verifies to, as `audit verify` prints it.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let verdict = rt.block_on(async {
        let url = format!("sqlite://{}", dir.join("demo-ledger.sqlite").display());
        let l = ledger::Ledger::open(&url, ledger::KeySource::File(dir.join("demo-audit.key")))
            .await
            .unwrap();
        let key = l.public_key().unwrap();
        l.verify(&key).await.unwrap()
    });
    assert!(verdict.is_intact());
    let head = format!(
        "{}:{}",
        verdict.last_seq,
        verdict.last_hash.clone().unwrap()
    );
    assert_eq!(
        format!(
            "{}:{}",
            facts["audit"]["headSeq"],
            facts["audit"]["headHash"].as_str().unwrap()
        ),
        head
    );
    assert!(!html.to_lowercase().contains("<script"), "no script");
    assert!(!html.contains("http-equiv=\"refresh\""));
    assert!(html.contains("default-src 'none'"), "the CSP is set");

    let Some(bin) = chromium() else {
        eprintln!("skipped the browser part: no chromium");
        return;
    };
    let profile = tmp();
    let (dom, log) = headless(&bin, profile.path(), &page, &["--dump-dom"]);
    let dom = String::from_utf8_lossy(&dom);
    for id in [
        "summary",
        "secrets",
        "contacts",
        "datastores",
        "webchat",
        "identity",
        "delivery",
    ] {
        assert!(
            dom.contains(&format!("id=\"{id}\"")),
            "section {id} in the DOM"
        );
    }
    assert!(dom.contains(&head), "the chain head in the DOM");
    for bad in ["Content Security Policy", "Refused to", "net::ERR"] {
        assert!(!log.contains(bad), "{bad} in Chromium's log:\n{log}");
    }

    let shot = dir.join("shot.png");
    headless(
        &bin,
        profile.path(),
        &page,
        &[
            "--window-size=1000,2400",
            &format!("--screenshot={}", shot.display()),
        ],
    );
    let ink = ink_per_band(&shot, 3);
    assert!(
        ink.iter().all(|s| *s > 0.02),
        "a blank screen height: {ink:?}"
    );

    let pdf = dir.join("report.pdf");
    headless(
        &bin,
        profile.path(),
        &page,
        &[
            "--no-pdf-header-footer",
            &format!("--print-to-pdf={}", pdf.display()),
        ],
    );
    let bytes = std::fs::read(&pdf).unwrap();
    // Page objects: "/Type /Page" (not "/Pages"), spaced either way.
    let text = String::from_utf8_lossy(&bytes).replace("/Type /", "/Type/");
    let pages = text.matches("/Type/Page").count() - text.matches("/Type/Pages").count();
    assert!(pages >= 2, "the PDF has {pages} page(s)");
}

#[test]
fn an_empty_ledger_says_never_run_and_tenant_strings_are_escaped() {
    let h = Harness::start(cxone_sim::SimConfig::default());
    h.sim
        .control()
        .edit_widget(
            "wgt-support",
            serde_json::json!({"name": "<script>alert('name')</script>", "settings": {"securityPolicies": {"rules": [
                {"id": "evil", "action": "allow", "pattern": "<img src=x onerror=alert(1)>"}
            ]}}}),
        )
        .unwrap();
    let o = h.run(&["report", "--out", "r.html"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let html = std::fs::read_to_string(h.dir.path().join("r.html")).unwrap();
    assert!(
        html.contains("&lt;script&gt;alert('name')&lt;/script&gt;"),
        "the name as text"
    );
    assert!(
        html.contains("&lt;img src=x onerror=alert(1)&gt;"),
        "the pattern as text"
    );
    assert!(!html.to_lowercase().contains("<script"));
    assert!(!html.to_lowercase().contains("<img"));
    let o = h.run(&["report", "--format", "json", "--out", "r.json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    validate_schema(&h.dir.path().join("r.json"));
    let facts: Value =
        serde_json::from_str(&std::fs::read_to_string(h.dir.path().join("r.json")).unwrap())
            .unwrap();
    let statuses: Vec<&str> = facts["summary"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["status"].as_str().unwrap())
        .collect();
    assert!(statuses.contains(&"never run"), "{statuses:?}");
    assert_eq!(facts["audit"]["entries"], 0);
    assert!(
        facts["webchat"][1]["findings"][0]
            .as_str()
            .unwrap()
            .contains("script vector"),
        "{}",
        facts["webchat"]
    );
}

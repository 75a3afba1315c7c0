//! (d) Transform throughput per operator, in fields/s on one core: what one contact's
//! plan costs before any network. Run: `cargo bench -p guard --bench transforms`.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use guard::anonymize::policy::Keep;
use guard::anonymize::transform::{encrypt_digits, mask};
use guard::keys::Key;
use guard::pseudonym::{Normalizer, parse_region, pseudonym};

fn operators(c: &mut Criterion) {
    let key = Key::from_bytes("bench", vec![5; 32]).unwrap();
    let n = Normalizer {
        region: Some(parse_region("US").unwrap()),
        gmail_folding: false,
    };
    let emails: Vec<String> = (0..1000)
        .map(|i| format!("  Person.{i}+tag@Example.COM "))
        .collect();
    let phones: Vec<String> = (0..1000)
        .map(|i| format!("+1 (212) 555-{:04}", i % 10_000))
        .collect();
    let mut g = c.benchmark_group("operator");
    g.throughput(Throughput::Elements(1000));
    g.bench_function("erase", |b| {
        b.iter(|| {
            emails
                .iter()
                .map(|e| usize::from(!black_box(e).is_empty()))
                .sum::<usize>()
        })
    });
    g.bench_function("replace", |b| {
        b.iter(|| {
            emails
                .iter()
                .map(|_| black_box("[redacted]").to_string())
                .map(|s| black_box(s).len())
                .sum::<usize>()
        })
    });
    g.bench_function("mask", |b| {
        b.iter(|| {
            phones
                .iter()
                .map(|p| mask(black_box(p), Keep::Last(4), '*', "+-() "))
                .map(|s| black_box(s).len())
                .sum::<usize>()
        })
    });
    g.bench_function("pseudonymize_email", |b| {
        b.iter(|| {
            emails
                .iter()
                .map(|e| pseudonym(&key, &n.email(black_box(e)).unwrap()))
                .map(|s| black_box(s).len())
                .sum::<usize>()
        })
    });
    g.bench_function("pseudonymize_phone", |b| {
        b.iter(|| {
            phones
                .iter()
                .map(|p| pseudonym(&key, &n.phone(black_box(p)).unwrap()))
                .map(|s| black_box(s).len())
                .sum::<usize>()
        })
    });
    g.bench_function("encrypt_ff1", |b| {
        b.iter(|| {
            phones
                .iter()
                .map(|p| encrypt_digits(&key, "c-1", "phone", black_box(p)).unwrap())
                .map(|s| black_box(s).len())
                .sum::<usize>()
        })
    });
    g.finish();
}

criterion_group!(benches, operators);
criterion_main!(benches);

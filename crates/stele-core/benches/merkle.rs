//! Hot paths of appending and proving: leaf and node hashing, frontier appends, and inclusion
//! proofs over a 1M-leaf tree (the store targets < 1 ms per proof on a 10M-entry log).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use stele_core::hash::{leaf_hash, node_hash};
use stele_core::merkle::{
    consistency_proof, inclusion_proof, verify_inclusion, Frontier, MemoryTree,
};

fn hashing(c: &mut Criterion) {
    let entry = vec![0x5a_u8; 300];
    let mut group = c.benchmark_group("hash");
    group.throughput(Throughput::Elements(1));
    group.bench_function("leaf_hash/300B", |b| {
        b.iter(|| leaf_hash(black_box(&entry)))
    });
    let (l, r) = (leaf_hash(b"left"), leaf_hash(b"right"));
    group.bench_function("node_hash", |b| {
        b.iter(|| node_hash(black_box(&l), black_box(&r)))
    });
    group.finish();
}

fn frontier(c: &mut Criterion) {
    let mut group = c.benchmark_group("frontier");
    group.throughput(Throughput::Elements(1));
    let leaf = leaf_hash(b"entry");
    // One long-lived frontier: the cost per append amortized over consecutive appends (on average
    // one node completes per leaf), as the store's writer sees it.
    let mut f = Frontier::new();
    group.bench_function("push", |b| {
        b.iter(|| {
            f.push(black_box(leaf), |level, index, hash| {
                black_box((level, index, hash));
            });
        });
    });
    group.bench_function("push_1024_from_empty", |b| {
        b.iter(|| {
            let mut f = Frontier::new();
            for _ in 0..1024 {
                f.push(black_box(leaf), |level, index, hash| {
                    black_box((level, index, hash));
                });
            }
            f.root()
        });
    });
    group.finish();
}

fn proofs(c: &mut Criterion) {
    const SIZE: u64 = 1 << 20;
    let tree = MemoryTree::from_leaves((0..SIZE).map(|i| leaf_hash(&i.to_be_bytes())).collect());
    // An unbalanced size, so the right edge has many peaks to fold.
    let size = SIZE - 12_345;
    let root = stele_core::merkle::root(&tree, size).unwrap();
    let mut group = c.benchmark_group("proof");
    group.bench_function("inclusion_proof/1M", |b| {
        let mut index = 0u64;
        b.iter(|| {
            index = (index + 7_919) % size;
            inclusion_proof(&tree, black_box(index), size).unwrap()
        });
    });
    group.bench_function("consistency_proof/1M", |b| {
        let mut from = 1u64;
        b.iter(|| {
            from = from % (size - 1) + 7_919;
            consistency_proof(&tree, black_box(from.min(size)), size).unwrap()
        });
    });
    let index = 424_242;
    let proof = inclusion_proof(&tree, index, size).unwrap();
    let leaf = tree.nodes(0)[index as usize];
    group.bench_function("verify_inclusion/1M", |b| {
        b.iter(|| verify_inclusion(black_box(&leaf), index, size, &proof, &root).unwrap());
    });
    group.finish();
}

criterion_group!(benches, hashing, frontier, proofs);
criterion_main!(benches);

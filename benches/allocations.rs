//! Heap allocations per `create_scenes` stage, the `api` bench's stages counted instead of timed:
//! a count does not move with the machine's load, so two builds compare exactly.
//!
//! `cargo bench --bench allocations` prints, per stage, the allocations (and bytes asked for) of
//! one call, dropping its result included.

#[path = "support/create_scenes.rs"]
mod request;

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};

use mvgen::generation::Generation;
use mvgen::generation::scenes::CreateScenesBody;
use mvgen::json_body::parse;
use request::{body, response, scenes};

/// The system allocator, counting every allocation and reallocation and the bytes they ask for.
struct Counting;

static CALLS: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);

// SAFETY: every call is passed on unchanged to `System`, which upholds the contract.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        CALLS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(layout.size() as u64, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        CALLS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(new_size as u64, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Allocations and bytes of `f`, its result dropped; the same each call, which is checked.
fn count<T>(stage: &str, mut f: impl FnMut() -> T) {
    let once = |f: &mut dyn FnMut() -> T| {
        let (calls, bytes) = (CALLS.load(Ordering::Relaxed), BYTES.load(Ordering::Relaxed));
        drop(black_box(f()));
        (CALLS.load(Ordering::Relaxed) - calls, BYTES.load(Ordering::Relaxed) - bytes)
    };
    let first = once(&mut f);
    assert_eq!(first, once(&mut f), "{stage} allocates differently from one call to the next");
    println!("create_scenes/{stage:<22} {:>4} allocations {:>7} bytes", first.0, first.1);
}

fn main() {
    let flavor = std::env::var("MVGEN_BENCH_FLAVOR").unwrap_or_else(|_| "default".to_owned());
    let request = body(&flavor);
    count("parse_request", || parse::<CreateScenesBody>(&request).expect("valid body"));
    let body = parse::<CreateScenesBody>(&request).expect("valid body");
    count("choose_flavor", || mvgen::flavor::choose(body.config_flavor.as_deref()));
    let chosen = mvgen::flavor::choose(body.config_flavor.as_deref());
    let valid = scenes(body);
    // The plan takes its request: the copy handed to it is made outside the count.
    let mut copies = vec![valid.clone(), valid.clone()].into_iter();
    count("scene_plan", || copies.next().expect("a copy").plan(&chosen.flavor));
    let (plan, _) = valid.plan(&chosen.flavor);
    count("build_response", || response(&plan, &chosen));
    let answer = response(&plan, &chosen);
    count("serialize_response", || serde_json::to_vec(&answer).expect("serializable"));
    count("parse_plan_serialize", || {
        let body = parse::<CreateScenesBody>(&request).expect("valid body");
        let chosen = mvgen::flavor::choose(body.config_flavor.as_deref());
        let (plan, _) = scenes(body).plan(&chosen.flavor);
        serde_json::to_vec(&response(&plan, &chosen)).expect("serializable")
    });
}

//! `mvgen serve --configs DIR` through the real binary: a saved edit is served without a restart,
//! a broken edit keeps the last good flavors and says why, a fix recovers, a deleted directory is
//! survived, and a missing one is refused at startup.

use crate::support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::client::{Client, copy_tree};
use support::server_process::ServerProcess;

/// How long a test waits for an edit to be served. The goal is under a second (measured by
/// `examples/live_reload_latency.rs`); the bound is generous for a loaded CI machine.
const DEADLINE: Duration = Duration::from_secs(15);

/// A copy of the shipped `configs/` in a temp dir.
fn configs_copy() -> (tempfile::TempDir, std::path::PathBuf) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("configs");
    copy_tree(&Path::new(env!("CARGO_MANIFEST_DIR")).join("configs"), &dir);
    (tmp, dir)
}

/// Saves the way editors do: write a temp file next to it, then rename over the original.
fn save(path: &Path, text: &str) {
    let tmp = path.with_extension("swp-tmp");
    std::fs::write(&tmp, text).expect("write");
    std::fs::rename(&tmp, path).expect("rename");
}

/// What these tests ask a live-configs server.
trait Flavors {
    fn flavors(&self) -> Value;
    fn scene_count(&self, flavor: &str) -> Option<usize>;
    fn until(&self, what: &str, done: impl Fn(&Value) -> bool) -> Value;
}

impl Flavors for Client {
    fn flavors(&self) -> Value {
        let (status, _, text) = self.send(self.http.get(format!("{}/api/mv/get_config_flavors", self.base)));
        assert_eq!(status, 200, "{text}");
        serde_json::from_str(&text).expect("json")
    }

    fn scene_count(&self, flavor: &str) -> Option<usize> {
        let (status, body) = self.scenes(flavor);
        assert_eq!(status, 200, "{body}");
        body["scenes"].as_array().map(Vec::len)
    }

    /// Polls the flavor list until `done` holds, within DEADLINE.
    fn until(&self, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        let start = Instant::now();
        loop {
            let list = self.flavors();
            if done(&list) {
                return list;
            }
            assert!(start.elapsed() < DEADLINE, "{what}: not within {DEADLINE:?}; last answer {list:#}");
            std::thread::sleep(Duration::from_millis(25));
        }
    }
}

fn description(list: &Value, name: &str) -> Value {
    list["details"]
        .as_array()
        .and_then(|d| d.iter().find(|f| f["name"] == name))
        .map_or(Value::Null, |f| f["description"].clone())
}

#[test]
fn edits_are_served_broken_edits_keep_the_last_good_table_and_deletion_is_survived() {
    let (_tmp, dir) = configs_copy();
    let dir_arg = dir.to_str().expect("utf-8 path");
    let server = ServerProcess::start_with(&["--configs", dir_arg], &[("MV_PROVIDER", "mock")]).expect("start");
    assert!(server.log().contains("live configs: serving flavors compiled from"), "{}", server.log());
    let client = Client::new(&server);

    let first = client.flavors();
    assert_eq!(first["live"], json!({"dir": dir_arg, "generation": 1, "diagnostics": []}));
    assert_eq!(first["flavors"], json!(["default", "example", "mv1"]));

    // A saved edit is served, no restart: a new description and a new scene count for mv1.
    let params = dir.join("mv1/parameters.yaml");
    let good = std::fs::read_to_string(&params).expect("read").replace("number_of_scenes: 8", "number_of_scenes: 3");
    let meta = dir.join("mv1/flavor.yaml");
    let meta_text = std::fs::read_to_string(&meta).expect("read");
    save(&params, &good);
    save(&meta, &meta_text.replace("description: A band on stage", "description: Edited live"));
    let list = client.until("edit served", |l| {
        description(l, "mv1").as_str().is_some_and(|d| d.starts_with("Edited live"))
            && l["live"]["diagnostics"] == json!([])
    });
    assert!(list["live"]["generation"].as_u64() >= Some(2), "{list:#}");
    assert_eq!(client.scene_count("mv1"), Some(3), "the edited count is used");

    // A broken edit: the last good table stays, the diagnostics say where.
    let generation = client.flavors()["live"]["generation"].clone();
    save(&params, &good.replace("number_of_scenes: 3", "number_of_scenes: three"));
    let list = client.until("diagnostics shown", |l| l["live"]["diagnostics"] != json!([]));
    let diags = list["live"]["diagnostics"].to_string();
    let expected = format!("{dir_arg}/mv1/parameters.yaml:");
    assert!(diags.contains(&expected) && diags.contains("number_of_scenes"), "{diags}");
    assert!(
        list["live"]["diagnostics"][0].as_str().is_some_and(|d| {
            let rest = d.trim_start_matches(&expected);
            let pos: Vec<&str> = rest.splitn(3, ':').collect();
            pos.len() == 3 && pos[0].parse::<u32>().is_ok() && pos[1].parse::<u32>().is_ok()
        }),
        "file:line:col: {diags}"
    );
    assert_eq!(list["live"]["generation"], generation, "nothing new is served");
    assert_eq!(client.scene_count("mv1"), Some(3), "last good table kept");
    assert!(server.log().contains("does not compile; still serving the last good flavors"), "{}", server.log());
    assert!(server.log().contains(&expected), "diagnostics logged with their position:\n{}", server.log());

    // The fix recovers.
    save(&params, &good.replace("number_of_scenes: 3", "number_of_scenes: 5"));
    client.until("fix served", |l| l["live"]["diagnostics"] == json!([]));
    assert_eq!(client.scene_count("mv1"), Some(5));

    // A new flavor directory appears and is served.
    std::fs::create_dir(dir.join("fresh")).expect("mkdir");
    std::fs::write(dir.join("fresh/flavor.yaml"), "label: Fresh\n").expect("write");
    client.until("new flavor served", |l| l["flavors"].as_array().is_some_and(|f| f.contains(&json!("fresh"))));

    // The directory is deleted: the last good table is kept, and the server says so.
    std::fs::remove_dir_all(&dir).expect("delete");
    let list = client.until("deletion reported", |l| l["live"]["diagnostics"] != json!([]));
    assert!(
        list["live"]["diagnostics"][0].as_str().is_some_and(|d| d.contains("the watched directory is gone")),
        "{list:#}"
    );
    assert!(list["flavors"].as_array().is_some_and(|f| f.contains(&json!("fresh"))));
    let (_, _, health) = client.send(client.http.get(format!("{}/health", client.base)));
    assert!(health.contains(r#""flavors":4"#), "health counts the served table: {health}");
    assert_eq!(client.scene_count("mv1"), Some(5));
    assert_eq!(client.scenes("mv1").1["metadata"]["config_flavor"]["fallback"], false);
    assert!(server.log().contains("the watched directory is gone"), "{}", server.log());

    // It comes back: served, and watched again (a later edit is served too).
    copy_tree(&Path::new(env!("CARGO_MANIFEST_DIR")).join("configs"), &dir);
    client.until("directory back", |l| {
        l["live"]["diagnostics"] == json!([]) && l["flavors"] == json!(["default", "example", "mv1"])
    });
    assert_eq!(client.scene_count("mv1"), Some(8));
    save(&meta, &meta_text.replace("description: A band on stage", "description: Watched again"));
    client.until("edit after re-creation served", |l| {
        description(l, "mv1").as_str().is_some_and(|d| d.starts_with("Watched again"))
    });
}

/// mv1's content hash in a copy of `dir` (made under `scratch`) whose mv1/parameters.yaml holds
/// `text`, as the compiler computes it.
fn mv1_hash_with(dir: &Path, scratch: &Path, text: &str) -> String {
    let copy = scratch.join(format!("hash-{}", text.len()));
    copy_tree(dir, &copy);
    std::fs::write(copy.join("mv1/parameters.yaml"), text).expect("write");
    let flavors = mvgen::compiler::compile(&copy).unwrap_or_else(|d| panic!("the copy compiles:\n{d}"));
    flavors.iter().find(|f| f.name == "mv1").expect("mv1").hash.to_string()
}

fn mv1_hash(list: &Value) -> String {
    list["details"]
        .as_array()
        .and_then(|d| d.iter().find(|f| f["name"] == "mv1"))
        .and_then(|f| f["hash"].as_str())
        .expect("mv1 listed with a hash")
        .to_string()
}

#[test]
fn a_file_truncated_then_written_after_a_pause_is_never_served_empty() {
    let (tmp, dir) = configs_copy();
    let params = dir.join("mv1/parameters.yaml");
    let original = std::fs::read_to_string(&params).expect("read");
    let edited = original.replace("number_of_scenes: 8", "number_of_scenes: 3");
    // An empty parameters.yaml compiles (mv1 then inherits default's): only its hash tells it apart.
    let [before, emptied, after] = [original.as_str(), "", edited.as_str()].map(|t| mv1_hash_with(&dir, tmp.path(), t));
    assert!(before != emptied && emptied != after && before != after, "three distinct states");

    let dir_arg = dir.to_str().expect("utf-8 path");
    let server = ServerProcess::start_with(&["--configs", dir_arg], &[("MV_PROVIDER", "mock")]).expect("start");
    let client = Client::new(&server);
    assert_eq!(mv1_hash(&client.flavors()), before);
    let served = |since: Instant| {
        let hash = mv1_hash(&client.flavors());
        assert_ne!(hash, emptied, "the emptied file was served {:?} after the truncation", since.elapsed());
        hash
    };

    // An in-place save whose writer pauses between truncating and writing, well past the 50 ms
    // debounce plus 50 ms quiet after which the server compiles. Polled throughout: the emptied
    // state must never be served, only the old content and then the new.
    let mut file = std::fs::OpenOptions::new().write(true).truncate(true).open(&params).expect("truncate");
    let truncated = Instant::now();
    let mut polls = 0;
    while truncated.elapsed() < Duration::from_millis(400) {
        assert_eq!(served(truncated), before, "the old content serves while the file is empty");
        polls += 1;
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(polls >= 10, "only {polls} polls during the pause: the check saw too little of it");
    std::io::Write::write_all(&mut file, edited.as_bytes()).expect("write");
    drop(file);
    loop {
        let hash = served(truncated);
        if hash == after {
            break;
        }
        assert_eq!(hash, before, "only the old content or the new one");
        assert!(truncated.elapsed() < DEADLINE, "the written edit was not served within {DEADLINE:?}");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(client.scene_count("mv1"), Some(3), "the edit is served");
    assert!(server.log().contains("was emptied or removed"), "the hold is logged:\n{}", server.log());

    // Emptied on purpose (inherit everything) and left so: served, once it has been still for 1 s.
    let emptied_at = Instant::now();
    std::fs::OpenOptions::new().write(true).truncate(true).open(&params).expect("truncate");
    client.until("an emptied file left alone is served", |l| mv1_hash(l) == emptied);
    assert!(emptied_at.elapsed() >= Duration::from_secs(1), "served after {:?}", emptied_at.elapsed());
    assert_eq!(client.scene_count("mv1"), Some(6), "mv1 now inherits default's scene count");
}

/// Puts something that is not a configs file where mv1/parameters.yaml was.
type Plant = fn(&Path);

#[test]
fn a_fifo_a_device_a_socket_a_huge_file_or_two_merge_keys_are_diagnostics_and_later_edits_are_served() {
    let (_tmp, dir) = configs_copy();
    let dir_arg = dir.to_str().expect("utf-8 path");
    let server = ServerProcess::start_with(&["--configs", dir_arg], &[("MV_PROVIDER", "mock")]).expect("start");
    let client = Client::new(&server);
    let params = dir.join("mv1/parameters.yaml");
    let good = std::fs::read_to_string(&params).expect("read");
    let shown = format!("{dir_arg}/mv1/parameters.yaml");
    let special = "a configs file must be a regular file or a link to one";
    let cases: [(&str, String, Plant); 5] = [
        // Before: the reload thread blocked in open() for good, and no later edit was ever served.
        ("a FIFO", format!("{shown}: not a regular file but a FIFO (named pipe): {special}"), |p| {
            let made = Command::new("mkfifo").arg(p).status().expect("run mkfifo");
            assert!(made.success(), "mkfifo {}", p.display());
        }),
        // Before: read until memory ran out.
        ("a link to /dev/zero", format!("{shown}: not a regular file but a character device: {special}"), |p| {
            std::os::unix::fs::symlink("/dev/zero", p).expect("symlink");
        }),
        ("a socket", format!("{shown}: not a regular file but a socket: {special}"), |p| {
            // The socket file stays when the listener is dropped.
            drop(std::os::unix::net::UnixListener::bind(p).expect("bind"));
        }),
        ("a 100 MB file", format!("{shown}: file is larger than 1 MiB (1048576 bytes)"), |p| {
            // Sparse: no disk used, and only the first MiB and a byte are ever read.
            std::fs::File::create(p).expect("create").set_len(100 << 20).expect("set_len");
        }),
        // Before: the second `<<` was dropped silently and the file served.
        ("two merge keys", format!("{shown}:2:1: duplicate key `<<`: each key may appear once per file"), |p| {
            std::fs::write(p, "<<: {video_type: a}\n<<: {camera_angle: b}\n").expect("write");
        }),
    ];
    let mut scenes = 8;
    for (what, diagnostic, plant) in cases {
        let generation = client.flavors()["live"]["generation"].clone();
        std::fs::remove_file(&params).expect("remove");
        plant(&params);
        let list = client.until(&format!("{what} reported"), |l| l["live"]["diagnostics"] != json!([]));
        let diags = &list["live"]["diagnostics"];
        assert!(
            diags.as_array().is_some_and(|d| d.len() == 1 && d[0].as_str().is_some_and(|d| d.starts_with(&diagnostic))),
            "{what}: {diags:#}"
        );
        assert_eq!(list["live"]["generation"], generation, "{what}: nothing new is served");
        assert_eq!(client.scene_count("mv1"), Some(scenes), "{what}: the last good table still serves");
        assert!(server.log().contains(&diagnostic), "{what}: logged\n{}", server.log());

        // A later good edit is still served.
        scenes += 1;
        save(&params, &good.replace("number_of_scenes: 8", &format!("number_of_scenes: {scenes}")));
        client.until(&format!("the edit after {what} served"), |l| l["live"]["diagnostics"] == json!([]));
        assert_eq!(client.scene_count("mv1"), Some(scenes), "{what}: the edit after it is served");
    }
}

#[test]
fn without_the_flag_the_embedded_flavors_are_served_and_nothing_says_live() {
    let server = ServerProcess::start(&[("MV_PROVIDER", "mock")]).expect("start");
    let list = Client::new(&server).flavors();
    assert!(list.get("live").is_none(), "{list:#}");
    assert!(!server.log().contains("live configs"), "{}", server.log());
}

fn serve_exit(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_mvgen"))
        .args(["serve", "--addr", "127.0.0.1:0"])
        .args(args)
        .env_clear()
        .env("MV_PROVIDER", "mock")
        .output()
        .expect("run mvgen");
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn a_missing_unreadable_or_invalid_configs_dir_refuses_to_start() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let missing = tmp.path().join("nope");
    let (code, err) = serve_exit(&["--configs", missing.to_str().expect("utf-8")]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("--configs") && err.contains("no such directory"), "{err}");

    let file = tmp.path().join("file.yaml");
    std::fs::write(&file, "x: 1\n").expect("write");
    let (code, err) = serve_exit(&["--configs", file.to_str().expect("utf-8")]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("not a directory"), "{err}");

    // A tree with no `default` flavor compiles to diagnostics: nothing good to serve.
    std::fs::create_dir_all(tmp.path().join("bad/mv1")).expect("mkdir");
    let (code, err) = serve_exit(&["--configs", tmp.path().join("bad").to_str().expect("utf-8")]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("no `default` flavor") && err.contains("does not compile"), "{err}");
}

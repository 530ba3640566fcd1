//! `mvgen` run as a user runs it: the real binary, its exit codes and exactly what it prints.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use mvgen::flavor;
use mvgen::prompts::{SceneInputs, scene_plan};

use crate::fixtures::{FIXTURES, PYTHON_LAYOUT, materialize};
use crate::scratch::{Scratch, copy_tree};

const MVGEN: &str = env!("CARGO_BIN_EXE_mvgen");

fn mvgen(args: &[&str]) -> Output {
    Command::new(MVGEN)
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap_or_else(|e| panic!("cannot run {MVGEN}: {e}"))
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).expect("stdout is UTF-8")
}

fn stderr(out: &Output) -> String {
    String::from_utf8(out.stderr.clone()).expect("stderr is UTF-8")
}

#[test]
fn check_accepts_the_shipped_configs() {
    let out = mvgen(&["check"]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    let names = flavor::names();
    assert_eq!(stdout(&out), format!("configs: {} flavors OK ({})\n", names.len(), names.join(", ")));
}

#[test]
fn check_prints_each_fault_in_the_build_format_and_exits_1() {
    let scratch = Scratch::new("check-wrong-type");
    let dir = scratch.path().join("configs");
    materialize("wrong_type", &dir);
    let out = mvgen(&["check", dir.to_str().expect("UTF-8 temp path")]);
    assert_eq!(out.status.code(), Some(1), "stderr: {}", stderr(&out));
    assert_eq!(
        stdout(&out),
        format!(
            "{}/default/parameters.yaml:5:19: number_of_scenes: expected an integer in 1..=32, found \"six\"\n\
             1 error in configs\n",
            dir.display()
        )
    );
}

#[test]
fn check_on_a_missing_directory_is_a_usage_error() {
    let out = mvgen(&["check", "no/such/configs"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(stderr(&out), "mvgen: no/such/configs: not a directory\n");
    assert_eq!(stdout(&out), "");
}

#[test]
fn show_explain_names_own_and_inherited_origins() {
    let out = mvgen(&["show", "mv1", "--explain"]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    let text = stdout(&out);
    for expected in [
        "scene_model: gemini-2.5-pro\n  # own: mv1/parameters.yaml:12:14\n",
        "model: google/imagen-4\n  # inherited from default: default/image_params.yaml:2:8\n",
        "video_duration: 8\n  # inherited from default: default/image_params.yaml:11:17\n",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
}

#[test]
fn flavors_lists_each_content_hash_and_a_runtime_compile_gets_the_same() {
    let scratch = Scratch::new("flavors-hash");
    let copy = scratch.path().join("configs");
    copy_tree(&Path::new(env!("CARGO_MANIFEST_DIR")).join("configs"), &copy);
    for args in [vec!["flavors"], vec!["flavors", "--configs", copy.to_str().expect("UTF-8 temp path")]] {
        let out = mvgen(&args);
        assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
        let text = stdout(&out);
        let mut lines = text.lines();
        assert!(lines.next().is_some_and(|h| h.split_whitespace().last() == Some("HASH")), "{text}");
        let rows: Vec<(&str, &str)> = lines
            .map(|l| (l.split_whitespace().next().unwrap_or(""), l.split_whitespace().last().unwrap_or("")))
            .collect();
        assert_eq!(rows.len(), flavor::names().len(), "{text}");
        for (name, hash) in rows {
            assert_eq!(Some(hash), flavor::lookup(name).map(|f| f.hash.as_ref()), "{args:?}: {text}");
        }
    }
}

#[test]
fn builtin_defaults_are_explained_as_such_in_text_and_json() {
    let out = mvgen(&["check", PYTHON_LAYOUT]);
    assert_eq!(out.status.code(), Some(0), "their layout passes check: {}{}", stdout(&out), stderr(&out));
    let out = mvgen(&["show", "mv1", "--explain", "--configs", PYTHON_LAYOUT]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    let text = stdout(&out);
    for expected in [
        "scene_model: gemini-2.5-pro\n  # built-in default (not set in any parameters.yaml)\n",
        "gemini_video_model: veo-3.1-generate-preview\n  # built-in default (not set in any image_params.yaml)\n",
        "camera_angle: handheld close-ups\n  # own: ",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
    let out = mvgen(&["show", "default", "--json", "--configs", PYTHON_LAYOUT]);
    let json: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("show --json prints JSON");
    let key = &json["files"]["parameters.yaml"]["scene_model"];
    assert_eq!((key["builtin_default"].as_bool(), key["origin"].is_null()), (Some(true), true), "{key}");
    assert_eq!(json["files"]["parameters.yaml"]["video_type"]["builtin_default"], false);
    // The embedded flavors: default sets scene_model itself, nobody sets gemini_video_model.
    let text = stdout(&mvgen(&["show", "default", "--explain"]));
    assert!(text.contains("scene_model: gemini-2.5-flash\n  # own: default/parameters.yaml:"), "{text}");
    assert!(text.contains("gemini_video_model: veo-3.1-generate-preview\n  # built-in default"), "{text}");
}

#[test]
fn show_of_an_unknown_flavor_suggests_the_nearest() {
    let out = mvgen(&["show", "mv2"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).starts_with("mvgen: no flavor named `mv2` (did you mean `mv1`?)"), "{}", stderr(&out));
}

#[test]
fn diff_lists_differing_keys_and_exits_1_only_when_some_differ() {
    let out = mvgen(&["diff", "default", "example"]);
    assert_eq!(out.status.code(), Some(1), "stderr: {}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.starts_with("# parameters.yaml video_type\n- default: music video\n+ example: short animated film\n"),
        "{text}"
    );
    assert!(text.ends_with("\n3 key(s) differ\n"), "{text}");

    let same = mvgen(&["diff", "example", "example"]);
    assert_eq!(same.status.code(), Some(0));
    assert_eq!(stdout(&same), "example and example resolve to the same values\n");
}

#[test]
fn render_json_prints_what_the_server_would_send_with_the_flavors_own_values() {
    let idea = "a {idea} on the moon";
    let out = mvgen(&["render", "mv1", "scenes", "--idea", idea, "--character-description", "a drummer", "--json"]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    let json: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("render --json prints JSON");
    let inputs = SceneInputs { idea: idea.into(), character_description: "a drummer".into(), ..Default::default() };
    let plan = scene_plan(flavor::lookup("mv1").expect("mv1"), inputs);
    assert_eq!(json["flavor"], "mv1");
    assert_eq!(json["prompt"], plan.prompt.as_str());
    assert_eq!(json["parameters"]["model"], "gemini-2.5-pro");
    assert_eq!(json["parameters"]["number_of_scenes"], 8);
    let prompt = json["prompt"].as_str().expect("prompt is a string");
    assert!(prompt.starts_with("You are directing a live performance music video."), "{prompt}");
    assert!(prompt.contains("Song idea: a {idea} on the moon\n"), "the idea stays verbatim: {prompt}");
    assert!(prompt.contains("Camera: low angles on the singer"), "{prompt}");
}

/// `render` normalises inputs as the server does (issue 9): padded text is stripped, an empty or
/// blank optional value is not given, so it prints what the server would send for the same request.
#[test]
fn render_normalises_inputs_like_the_server() {
    let padded = mvgen(&["render", "mv1", "video", "--prompt", "  x \n", "--negative-prompt", " ", "--json"]);
    let clean = mvgen(&["render", "mv1", "video", "--prompt", "x", "--json"]);
    assert_eq!(padded.status.code(), Some(0), "stderr: {}", stderr(&padded));
    assert_eq!(stdout(&padded), stdout(&clean));
    let json: serde_json::Value = serde_json::from_str(&stdout(&padded)).expect("JSON");
    assert!(json["prompt"].as_str().is_some_and(|p| p.starts_with("x\n\n")), "{json}");
    assert_eq!(json["parameters"]["negative_prompt"], serde_json::Value::Null);
    let padded =
        mvgen(&["render", "mv1", "scenes", "--idea", " tides ", "--character-description", "c", "--camera-angle", ""]);
    let clean = mvgen(&["render", "mv1", "scenes", "--idea", "tides", "--character-description", "c"]);
    assert_eq!(stdout(&padded), stdout(&clean));
}

#[test]
fn render_compiles_a_configs_dir_given_on_the_command_line() {
    let scratch = Scratch::new("render-configs");
    copy_tree(&Path::new(FIXTURES).join("_base/configs"), scratch.path());
    let dir = scratch.path().to_str().expect("UTF-8 temp path");
    let out =
        mvgen(&["render", "default", "scenes", "--configs", dir, "--idea", "tides", "--character-description", "x"]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    assert_eq!(stdout(&out), "Write 6 scenes about tides.", "the on-disk template, not the embedded one");
}

#[test]
fn a_reader_that_goes_away_is_not_an_error() {
    // More than a pipe buffer (64 KiB on Linux) of output, so the write must fail once the reader is
    // gone, however the two processes are scheduled.
    let idea = "x".repeat(100_000);
    let mut child = Command::new(MVGEN)
        .args(["render", "default", "scenes", "--idea", &idea, "--character-description", "y"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn mvgen");
    drop(child.stdout.take());
    let mut err = String::new();
    child.stderr.take().expect("piped stderr").read_to_string(&mut err).expect("read stderr");
    let status = child.wait().expect("wait for mvgen");
    assert_eq!((status.code(), err.as_str()), (Some(0), ""), "like `mvgen render ... | head`");
}

/// `main` decides every exit code and prints every error, once, as `mvgen: ` and the whole cause:
/// the commands that are not about configs follow the same contract as `check` and `diff`.
#[test]
fn every_command_shares_one_exit_code_contract() {
    let run = |args: &[&str], env: &[(&str, &str)], stdout: Stdio| {
        let out = Command::new(MVGEN)
            .args(args)
            .env_remove("MVGEN_ADDR")
            .env_remove("PORT")
            .envs(env.iter().copied())
            .stdout(stdout)
            .output()
            .expect("run mvgen");
        (out.status.code(), stderr(&out))
    };
    let one_line = |err: &str, start: &str| err.starts_with(start) && err.lines().count() == 1;

    // Nothing listens on a port just freed: a negative answer, exit 1.
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let addr = format!("127.0.0.1:{port}");
    let (code, err) = run(&["healthcheck", "--addr", &addr], &[], Stdio::null());
    assert!(code == Some(1) && one_line(&err, &format!("mvgen: health check of {addr} failed: ")), "{code:?} {err}");

    // Settings it cannot use: exit 2, naming the setting.
    let (code, err) = run(&["healthcheck"], &[("PORT", "x")], Stdio::null());
    assert!(code == Some(2) && one_line(&err, "mvgen: invalid settings: PORT=\"x\": "), "{code:?} {err}");
    let (code, err) = run(&["serve", "--addr", "127.0.0.1:0"], &[("MV_PROVIDER", "bogus")], Stdio::null());
    assert!(code == Some(2) && one_line(&err, "mvgen: invalid provider settings: MV_PROVIDER="), "{code:?} {err}");

    // A full disk is an I/O error (exit 2); only a reader that went away is not an error.
    let full = std::fs::File::create("/dev/full").expect("/dev/full");
    let (code, err) = run(&["show", "default"], &[], Stdio::from(full));
    assert!(code == Some(2) && one_line(&err, "mvgen: cannot write to stdout: "), "{code:?} {err}");
}

/// `mvgen check DIR`, failing the test instead of hanging it when the check does not finish (a
/// FIFO used to block the compiler's open for good).
fn check_within(dir: &Path, limit: std::time::Duration) -> Output {
    let mut child = Command::new(MVGEN)
        .args(["check", dir.to_str().expect("UTF-8 temp path")])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {MVGEN}: {e}"));
    let start = std::time::Instant::now();
    while child.try_wait().expect("wait for mvgen check").is_none() {
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("mvgen check {} did not finish within {limit:?}", dir.display());
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.wait_with_output().expect("mvgen check output")
}

#[test]
fn check_reads_only_what_a_configs_file_can_be_and_names_each_file_that_is_not() {
    let scratch = Scratch::new("check-special-files");
    let dir = scratch.path().join("configs");
    copy_tree(&Path::new(FIXTURES).join("_base/configs"), &dir);
    let flavor_file = |flavor: &str| {
        std::fs::create_dir_all(dir.join(flavor)).expect("mkdir");
        dir.join(flavor).join("parameters.yaml")
    };
    // A link to a regular file elsewhere is how Kubernetes mounts a ConfigMap: read as the file.
    let data = scratch.path().join("..data");
    std::fs::create_dir_all(&data).expect("mkdir");
    std::fs::write(data.join("parameters.yaml"), "number_of_scenes: 3\n").expect("write");
    std::os::unix::fs::symlink(data.join("parameters.yaml"), flavor_file("linked")).expect("symlink");
    // 2 MiB, over the 1 MiB cap (sparse: no disk used).
    std::fs::File::create(flavor_file("big")).expect("create").set_len(2 << 20).expect("set_len");
    let fifo = flavor_file("fifo");
    let made = Command::new("mkfifo").arg(&fifo).status().expect("run mkfifo");
    assert!(made.success(), "mkfifo {}", fifo.display());
    let _socket = std::os::unix::net::UnixListener::bind(flavor_file("sock")).expect("bind a unix socket");
    std::os::unix::fs::symlink("/dev/zero", flavor_file("zero")).expect("symlink");
    // Two merge keys in one mapping: the same fault as any key written twice.
    std::fs::write(flavor_file("merged"), "<<: {video_type: a}\nnumber_of_scenes: 4\n<<: {camera_angle: b}\n")
        .expect("write");

    let out = check_within(&dir, std::time::Duration::from_secs(30));
    assert_eq!(out.status.code(), Some(1), "stderr: {}", stderr(&out));
    let d = dir.display();
    let special = "a configs file must be a regular file or a link to one";
    assert_eq!(
        stdout(&out),
        format!(
            "{d}/big/parameters.yaml: file is larger than 1 MiB (1048576 bytes), the most a configs file may be; a flavor's settings fit in a few KiB\n\
             {d}/fifo/parameters.yaml: not a regular file but a FIFO (named pipe): {special}\n\
             {d}/merged/parameters.yaml:3:1: duplicate key `<<`: each key may appear once per file\n\
             {d}/sock/parameters.yaml: not a regular file but a socket: {special}\n\
             {d}/zero/parameters.yaml: not a regular file but a character device: {special}\n\
             5 errors in configs\n"
        )
    );
}

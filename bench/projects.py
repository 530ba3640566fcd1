#!/usr/bin/env python3
"""Drives mvgen's projects for bench/projects.sh (standard library only).

  projects.py make BASE[,BASE2] COUNT SONG FLAVOR
      creates COUNT projects concurrently (multipart, with the song), asks each to be made
      server-side (POST /generate), spreading requests over the given replicas, and waits until all
      are completed with a final cut. Prints: seconds, scenes made, projects failed.
  projects.py big BASE SONG SCENES
      creates one project with SCENES scenes (create_scenes with project_id and
      number_of_scenes), renders none, and prints its id (for the GET benchmark).
"""
import json
import sys
import time
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor


def call(method, url, body=None, content_type="application/json"):
    data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        request.add_header("content-type", content_type)
    with urllib.request.urlopen(request, timeout=120) as response:
        return json.loads(response.read() or b"null")


def create(base, song, flavor):
    boundary = uuid.uuid4().hex
    fields = [("mode", "music-video"), ("prompt", "A fox dances through a neon city at night"),
              ("characterDescription", "a red fox in a silver jacket"), ("config_flavor", flavor)]
    body = b"".join(
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n".encode() for k, v in fields)
    body += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"audio\"; filename=\"song.mp3\"\r\n"
             "Content-Type: audio/mpeg\r\n\r\n").encode() + song + f"\r\n--{boundary}--\r\n".encode()
    return call("POST", f"{base}/api/mv/projects", body, f"multipart/form-data; boundary={boundary}")["projectId"]


def make(bases, count, song, flavor):
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=16) as pool:
        ids = list(pool.map(lambda i: create(bases[i % len(bases)], song, flavor), range(count)))
        list(pool.map(lambda p: call("POST", f"{bases[p[0] % len(bases)]}/api/mv/projects/{p[1]}/generate", {}),
                      enumerate(ids)))
    pending = set(ids)
    failed = 0
    scenes = 0
    while pending:
        time.sleep(0.5)
        for i, pid in enumerate(list(pending)):
            project = call("GET", f"{bases[i % len(bases)]}/api/mv/projects/{pid}")
            if project["status"] == "failed":
                failed += 1
                pending.discard(pid)
            elif project["status"] == "completed" and project.get("finalOutputUrl"):
                scenes += len(project["scenes"])
                pending.discard(pid)
        if time.monotonic() - started > 1800:
            sys.exit(f"projects.py: {len(pending)} projects unfinished after 30 min")
    print(f"{time.monotonic() - started:.2f} {scenes} {failed}")


def big(base, song, scenes):
    pid = create(base, song, "default")
    call("POST", f"{base}/api/mv/create_scenes",
         {"idea": "A fox dances", "character_description": "a fox", "number_of_scenes": scenes, "project_id": pid})
    print(pid)


if __name__ == "__main__":
    command = sys.argv[1]
    if command == "make":
        make(sys.argv[2].split(","), int(sys.argv[3]), open(sys.argv[4], "rb").read(), sys.argv[5])
    elif command == "big":
        big(sys.argv[2], open(sys.argv[3], "rb").read(), int(sys.argv[4]))

// An audit plugin for skiff (world `observer` of skiff:plugin@0.2.0, plus the WASI filesystem).
//
// after-start and after-exit each append one JSON line to `events.jsonl` in the directory named
// by the setting `dir`, which must be granted to the plugin read-write (the host preopens it at
// the same path inside the guest):
//   {"event":"start","id":…,"name":…,"image":…,"pid":…}
//   {"event":"exit","id":…,"name":…,"image":…,"exit_code":…,"signal":…,"oom_killed":…,
//    "duration_ms":…,"will_restart":…,"removing":…}
// Without the setting, or without a preopened directory holding it, it logs an error and
// records nothing; a failed write is logged too. It never traps.

import host from "skiff:plugin/host@0.2.0";
import preopens from "wasi:filesystem/preopens@0.2.12";

// UTF-8 bytes of a string (QuickJS here has no TextEncoder).
function utf8(s) {
  const out = [];
  for (const ch of s) {
    let c = ch.codePointAt(0);
    if (c < 0x80) out.push(c);
    else if (c < 0x800) out.push(0xc0 | (c >> 6), 0x80 | (c & 63));
    else if (c < 0x10000) out.push(0xe0 | (c >> 12), 0x80 | ((c >> 6) & 63), 0x80 | (c & 63));
    else out.push(0xf0 | (c >> 18), 0x80 | ((c >> 12) & 63), 0x80 | ((c >> 6) & 63), 0x80 | (c & 63));
  }
  return new Uint8Array(out);
}

// The preopened directory holding `dir` and the path of events.jsonl relative to it.
function target(dir) {
  const want = dir.replace(/\/+$/, "") || "/";
  let best = null;
  for (const [desc, path] of preopens.getDirectories()) {
    const p = path.replace(/\/+$/, "") || "/";
    const inside = want === p || want.startsWith(p === "/" ? "/" : p + "/");
    if (inside && (best === null || p.length > best[1].length)) best = [desc, p];
  }
  if (best === null) return null;
  const rest = want.slice(best[1].length).replace(/^\/+/, "");
  return [best[0], rest ? rest + "/events.jsonl" : "events.jsonl"];
}

function append(record) {
  const dir = host.setting("dir");
  if (dir === null || dir === undefined) {
    host.log("error", "no `dir` setting: nothing recorded");
    return;
  }
  try {
    const t = target(dir);
    if (t === null) {
      host.log("error", `${dir} is not granted to this plugin: nothing recorded`);
      return;
    }
    const [desc, rel] = t;
    const file = desc.openAt({}, rel, { create: true }, { write: true });
    const out = file.appendViaStream();
    const bytes = utf8(JSON.stringify(record) + "\n");
    // blocking-write-and-flush takes at most 4096 bytes at a time.
    for (let i = 0; i < bytes.length; i += 4096) {
      out.blockingWriteAndFlush(bytes.subarray(i, i + 4096));
    }
    out[Symbol.dispose]();
    file[Symbol.dispose]();
  } catch (e) {
    host.log("error", `writing ${dir}/events.jsonl: ${e && e.payload !== undefined ? e.payload : e}`);
  }
}

export const afterStart = {
  afterStart(ev) {
    append({ event: "start", id: ev.id, name: ev.name, image: ev.image, pid: ev.pid });
  },
};

export const afterExit = {
  afterExit(ev) {
    append({
      event: "exit",
      id: ev.id,
      name: ev.name,
      image: ev.image,
      exit_code: ev.exitCode,
      signal: ev.signal,
      oom_killed: ev.oomKilled,
      duration_ms: ev.durationMs,
      will_restart: ev.willRestart,
      removing: ev.removing,
    });
  },
};

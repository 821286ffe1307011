//! Unpack safety: hostile tars built byte by byte in the test, checked entry by entry.

use super::*;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};

/// One tar entry with an arbitrary (possibly hostile) name, written raw so the builder cannot object.
struct E<'a> {
    name: &'a str,
    kind: tar::EntryType,
    link: &'a str,
    data: &'a [u8],
    mode: u32,
    uid: u64,
}

fn e<'a>(name: &'a str, kind: tar::EntryType) -> E<'a> {
    // Directories need x to be entered by a non-root reader of the result.
    let mode = if kind == tar::EntryType::Directory {
        0o755
    } else {
        0o644
    };
    E {
        name,
        kind,
        link: "",
        data: b"",
        mode,
        uid: 0,
    }
}

fn tar_of(entries: &[E<'_>]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for en in entries {
        let mut h = tar::Header::new_gnu();
        let raw = &mut h.as_old_mut().name;
        raw[..en.name.len()].copy_from_slice(en.name.as_bytes());
        if !en.link.is_empty() {
            h.as_old_mut().linkname[..en.link.len()].copy_from_slice(en.link.as_bytes());
        }
        h.set_entry_type(en.kind);
        h.set_mode(en.mode);
        h.set_uid(en.uid);
        h.set_gid(en.uid);
        h.set_mtime(1_600_000_000);
        h.set_size(en.data.len() as u64);
        h.set_cksum();
        b.append(&h, en.data).unwrap();
    }
    b.into_inner().unwrap()
}

fn unpack(bytes: &[u8], dest: &Path) -> Result<UnpackReport> {
    let d = Digest::of(bytes);
    unpack_stream(
        io::Cursor::new(bytes.to_vec()),
        &d,
        dest,
        UnpackOptions {
            chown: rustix::process::geteuid().is_root(),
            plain: false,
            max_size: 0,
        },
    )
}

#[test]
fn a_plain_archive_keeps_whiteout_names_and_stays_inside_its_root() {
    let t = tempfile::tempdir().unwrap();
    let dest = t.path().join("dest");
    std::fs::create_dir(&dest).unwrap();
    std::fs::write(dest.join("old"), b"replace me").unwrap();
    let outside = t.path().join("outside");
    let outside_s = outside.to_string_lossy().into_owned();
    let wh = E {
        data: b"plain",
        ..e("d/.wh.kept", tar::EntryType::Regular)
    };
    let esc = E {
        link: &outside_s,
        ..e("link", tar::EntryType::Symlink)
    };
    let through = E {
        data: b"never outside",
        ..e("link/x", tar::EntryType::Regular)
    };
    let old = E {
        data: b"replaced",
        ..e("old", tar::EntryType::Regular)
    };
    unpack_archive(
        io::Cursor::new(tar_of(&[wh, old])),
        &dest,
        UnpackOptions::default(),
    )
    .unwrap();
    assert_eq!(std::fs::read(dest.join("d/.wh.kept")).unwrap(), b"plain");
    assert_eq!(std::fs::read(dest.join("old")).unwrap(), b"replaced");
    let err = unpack_archive(
        io::Cursor::new(tar_of(&[esc, through])),
        &dest,
        UnpackOptions::default(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("symlink"), "{err}");
    assert!(!outside.exists(), "nothing written through the symlink");
}

fn setup() -> (tempfile::TempDir, std::path::PathBuf) {
    let t = tempfile::tempdir().unwrap();
    let dest = t.path().join("layer");
    std::fs::create_dir(&dest).unwrap();
    (t, dest)
}

/// Everything the temp dir holds outside `layer/`, which must stay empty of strays.
fn outside(t: &tempfile::TempDir) -> Vec<String> {
    std::fs::read_dir(t.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "layer")
        .collect()
}

#[test]
fn dotdot_names_are_refused_and_write_nothing_outside() {
    let (t, dest) = setup();
    let mut f = e("../evil", tar::EntryType::Regular);
    f.data = b"x";
    let err = unpack(&tar_of(&[f]), &dest).unwrap_err().to_string();
    assert!(err.contains("outside the layer"), "{err}");
    assert!(outside(&t).is_empty());
    let mut g = e("a/../../evil2", tar::EntryType::Regular);
    g.data = b"x";
    assert!(unpack(&tar_of(&[g]), &dest).is_err());
    assert!(outside(&t).is_empty());
}

#[test]
fn inner_dotdot_that_stays_inside_is_fine() {
    let (_t, dest) = setup();
    let mut f = e("a/b/../c", tar::EntryType::Regular);
    f.data = b"ok";
    unpack(&tar_of(&[f]), &dest).unwrap();
    assert_eq!(std::fs::read(dest.join("a/c")).unwrap(), b"ok");
}

#[test]
fn absolute_names_are_contained() {
    let (t, dest) = setup();
    let mut f = e("/abs/file", tar::EntryType::Regular);
    f.data = b"in";
    unpack(&tar_of(&[f]), &dest).unwrap();
    assert_eq!(std::fs::read(dest.join("abs/file")).unwrap(), b"in");
    assert!(outside(&t).is_empty());
    assert!(!Path::new("/abs/file").exists());
}

#[test]
fn symlinked_parents_cannot_lead_out() {
    let (t, dest) = setup();
    let host = t.path().join("host");
    std::fs::create_dir(&host).unwrap();
    let host_s = host.to_string_lossy().into_owned();
    let mut rel = e("up", tar::EntryType::Symlink);
    rel.link = "../../../../../..";
    let mut abs = e("abs", tar::EntryType::Symlink);
    abs.link = &host_s;
    let mut f1 = e("up/escape1", tar::EntryType::Regular);
    f1.data = b"1";
    let mut f2 = e("abs/escape2", tar::EntryType::Regular);
    f2.data = b"2";
    // The same path exists inside the layer: the write must go there, not to the host.
    let inner = format!("{}/", host_s.trim_start_matches('/'));
    let inside = e(&inner, tar::EntryType::Directory);
    unpack(&tar_of(&[rel, abs, inside, f1, f2]), &dest).unwrap();
    assert!(
        std::fs::read_dir(&host).unwrap().next().is_none(),
        "nothing written in the host dir"
    );
    assert_eq!(outside(&t), vec!["host".to_string()]);
    // The writes landed inside the layer, where the links point when resolved in its root.
    assert_eq!(std::fs::read(dest.join("escape1")).unwrap(), b"1");
    assert_eq!(
        std::fs::read(dest.join(host_s.trim_start_matches('/')).join("escape2")).unwrap(),
        b"2"
    );
}

#[test]
fn a_dangling_symlinked_parent_is_refused() {
    let (t, dest) = setup();
    let mut abs = e("abs", tar::EntryType::Symlink);
    let target = t.path().join("nothere").to_string_lossy().into_owned();
    abs.link = &target;
    let f = e("abs/x", tar::EntryType::Regular);
    let err = unpack(&tar_of(&[abs, f]), &dest).unwrap_err().to_string();
    assert!(
        err.contains("symlink to a directory this layer does not have"),
        "{err}"
    );
    assert!(outside(&t).is_empty());
}

#[test]
fn ordinary_absolute_symlinked_dirs_work_inside_the_root() {
    // var/run -> /run, then var/run/x: tar's own unpacker fails on this; it must land in run/x.
    let (_t, dest) = setup();
    let run = e("run/", tar::EntryType::Directory);
    let mut l = e("var/run", tar::EntryType::Symlink);
    l.link = "/run";
    let mut f = e("var/run/x", tar::EntryType::Regular);
    f.data = b"pid";
    unpack(&tar_of(&[run, l, f]), &dest).unwrap();
    assert_eq!(std::fs::read(dest.join("run/x")).unwrap(), b"pid");
    assert_eq!(
        std::fs::read_link(dest.join("var/run")).unwrap(),
        Path::new("/run")
    );
}

#[test]
fn hardlinks_cannot_point_out() {
    let (t, dest) = setup();
    let secret = t.path().join("secret");
    std::fs::write(&secret, b"s").unwrap();
    let mut h1 = e("h1", tar::EntryType::Link);
    h1.link = "../secret";
    assert!(unpack(&tar_of(&[h1]), &dest)
        .unwrap_err()
        .to_string()
        .contains("outside the layer"));
    // Through a symlink to the host dir: resolved in the root, so the target is simply not there.
    let tdir = t.path().to_string_lossy().into_owned();
    let mut s = e("s", tar::EntryType::Symlink);
    s.link = &tdir;
    let mut h2 = e("h2", tar::EntryType::Link);
    h2.link = "s/secret";
    let err = unpack(&tar_of(&[s, h2]), &dest).unwrap_err().to_string();
    assert!(err.contains("not in this layer"), "{err}");
    assert!(!dest.join("h2").exists());
    assert_eq!(
        std::fs::metadata(&secret).unwrap().nlink(),
        1,
        "host file gained no link"
    );
}

#[test]
fn whiteouts_become_overlay_whiteouts_and_cannot_point_out() {
    let (t, dest) = setup();
    std::fs::write(t.path().join("victim"), b"v").unwrap();
    let wh = e("dir/.wh.gone", tar::EntryType::Regular);
    let opq = e("opq/.wh..wh..opq", tar::EntryType::Regular);
    let mut keep = e("opq/kept", tar::EntryType::Regular);
    keep.data = b"k";
    let mut up = e("up", tar::EntryType::Symlink);
    up.link = "../..";
    let out = e("up/.wh.victim", tar::EntryType::Regular);
    unpack(&tar_of(&[wh, keep, opq, up, out]), &dest).unwrap();
    let md = std::fs::symlink_metadata(dest.join("dir/gone")).unwrap();
    use std::os::unix::fs::FileTypeExt;
    assert!(md.file_type().is_char_device());
    assert_eq!(md.rdev(), 0);
    assert_eq!(
        std::fs::read(dest.join("opq/kept")).unwrap(),
        b"k",
        "opaque marker spares the layer's own entries"
    );
    let fd = rfs::open(
        dest.join("opq"),
        OFlags::RDONLY | OFlags::DIRECTORY,
        Mode::empty(),
    )
    .unwrap();
    let mut buf = [0u8; 4];
    let n = rfs::fgetxattr(&fd, OPAQUE_XATTR, &mut buf).unwrap();
    assert_eq!(&buf[..n], b"y");
    assert_eq!(
        std::fs::read(t.path().join("victim")).unwrap(),
        b"v",
        "whiteout via symlink stays inside"
    );
    assert!(std::fs::symlink_metadata(dest.join("victim"))
        .unwrap()
        .file_type()
        .is_char_device());
    let bad = e("../.wh.victim", tar::EntryType::Regular);
    assert!(unpack(&tar_of(&[bad]), &dest).is_err());
    assert_eq!(std::fs::read(t.path().join("victim")).unwrap(), b"v");
}

#[test]
fn metadata_is_preserved() {
    let (_t, dest) = setup();
    let mut d = e("bin/", tar::EntryType::Directory);
    d.mode = 0o555;
    let mut f = e("bin/tool", tar::EntryType::Regular);
    f.data = b"#!x";
    f.mode = 0o4755;
    f.uid = 1000;
    let mut l = e("bin/alias", tar::EntryType::Symlink);
    l.link = "tool";
    let mut h = e("bin/hard", tar::EntryType::Link);
    h.link = "bin/tool";
    let rep = unpack(&tar_of(&[d, f, l, h]), &dest).unwrap();
    assert!(rep.size > 0);
    let md = std::fs::metadata(dest.join("bin/tool")).unwrap();
    assert_eq!(md.permissions().mode() & 0o7777, 0o4755);
    assert_eq!(md.mtime(), 1_600_000_000);
    assert_eq!(md.nlink(), 2);
    assert_eq!(
        std::fs::metadata(dest.join("bin/hard")).unwrap().ino(),
        md.ino()
    );
    if rustix::process::geteuid().is_root() {
        assert_eq!(md.uid(), 1000);
    } else {
        assert_eq!(md.uid(), rustix::process::geteuid().as_raw());
    }
    assert_eq!(
        std::fs::read_link(dest.join("bin/alias")).unwrap(),
        Path::new("tool")
    );
    let dm = std::fs::metadata(dest.join("bin")).unwrap();
    assert_eq!(dm.permissions().mode() & 0o7777, 0o555);
    assert_eq!(
        dm.mtime(),
        1_600_000_000,
        "dir mtime applied after its contents"
    );
    remove_tree(&dest).unwrap();
    assert!(!dest.exists(), "read-only trees can be removed");
}

#[test]
fn later_entries_replace_earlier_ones() {
    let (_t, dest) = setup();
    let mut a = e("x", tar::EntryType::Regular);
    a.data = b"old";
    let d = e("x/", tar::EntryType::Directory);
    let mut f = e("x/y", tar::EntryType::Regular);
    f.data = b"new";
    unpack(&tar_of(&[a, d, f]), &dest).unwrap();
    assert_eq!(std::fs::read(dest.join("x/y")).unwrap(), b"new");
}

#[test]
fn diff_id_is_verified() {
    let (_t, dest) = setup();
    let bytes = tar_of(&[e("f", tar::EntryType::Regular)]);
    let err = unpack_stream(
        io::Cursor::new(bytes),
        &Digest::of(b"other"),
        &dest,
        UnpackOptions::default(),
    )
    .unwrap_err();
    // The blob matched its own digest: the image is wrong, and saying "try again" would mislead.
    assert!(matches!(err, Error::DiffIdMismatch { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("inconsistent") && !msg.contains("try again"),
        "{msg}"
    );
}

/// A tar holding a GNU sparse file `name` of `real` bytes whose only data is `tail` at its end.
fn sparse_tar(name: &str, real: u64, tail: &[u8]) -> Vec<u8> {
    fn octal(field: &mut [u8], v: u64) {
        let s = format!("{v:0w$o}", w = field.len() - 1);
        field[..s.len()].copy_from_slice(s.as_bytes());
        field[s.len()..].fill(0);
    }
    let mut h = tar::Header::new_gnu();
    h.set_path(name).unwrap();
    h.set_entry_type(tar::EntryType::GNUSparse);
    h.set_mode(0o644);
    h.set_mtime(1_600_000_000);
    h.set_size(tail.len() as u64);
    {
        let g = h.as_gnu_mut().unwrap();
        octal(&mut g.sparse[0].offset, real - tail.len() as u64);
        octal(&mut g.sparse[0].numbytes, tail.len() as u64);
        octal(&mut g.realsize, real);
    }
    h.set_cksum();
    let mut b = tar::Builder::new(Vec::new());
    b.append(&h, tail).unwrap();
    b.into_inner().unwrap()
}

fn unpack_limited(bytes: &[u8], dest: &Path, max_size: u64) -> Result<UnpackReport> {
    unpack_stream(
        io::Cursor::new(bytes.to_vec()),
        &Digest::of(bytes),
        dest,
        UnpackOptions {
            max_size,
            ..UnpackOptions::default()
        },
    )
}

#[test]
fn a_sparse_entry_is_written_with_holes_and_counts_against_the_limit() {
    // A 2.5 KiB layer that expands to 256 MiB: written as a hole it costs almost no disk.
    let real = 256 << 20;
    let bytes = sparse_tar("big", real, b"end");
    assert!(bytes.len() < 4096);
    let (_t, dest) = setup();
    unpack_limited(&bytes, &dest, 0).unwrap();
    let md = std::fs::metadata(dest.join("big")).unwrap();
    assert_eq!(md.len(), real);
    assert!(
        md.blocks() * 512 < 1 << 20,
        "holes cost no disk: {} bytes allocated",
        md.blocks() * 512
    );
    let mut f = std::fs::File::open(dest.join("big")).unwrap();
    io::Seek::seek(&mut f, io::SeekFrom::End(-3)).unwrap();
    let mut end = Vec::new();
    io::Read::read_to_end(&mut f, &mut end).unwrap();
    assert_eq!(end, b"end");
    // With a cap below its full size the layer is refused, naming the setting.
    let (_t, dest) = setup();
    let err = unpack_limited(&bytes, &dest, 64 << 20).unwrap_err();
    assert!(matches!(err, Error::LayerTooLarge { .. }), "{err}");
    assert!(err.to_string().contains("max_layer_size"), "{err}");
}

#[test]
fn a_decompression_bomb_stops_at_the_limit() {
    let mut f = e("zeros", tar::EntryType::Regular);
    let zeros = vec![0u8; 8 << 20];
    f.data = &zeros;
    let plain = tar_of(&[f]);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(&plain).unwrap();
    let gz = gz.finish().unwrap();
    let (_t, dest) = setup();
    let err = unpack_stream(
        io::Cursor::new(gz),
        &Digest::of(&plain),
        &dest,
        UnpackOptions {
            max_size: 1 << 20,
            ..UnpackOptions::default()
        },
    )
    .unwrap_err();
    assert!(matches!(err, Error::LayerTooLarge { .. }), "{err}");
    // Under the limit the same layer unpacks, its zeros stored as holes.
    let (_t, dest) = setup();
    unpack_limited(&plain, &dest, 16 << 20).unwrap();
    let md = std::fs::metadata(dest.join("zeros")).unwrap();
    assert_eq!(md.len(), 8 << 20);
    assert!(md.blocks() * 512 < 8 << 20, "{}", md.blocks());
}

#[test]
fn forged_overlay_xattrs_are_dropped_and_others_kept() {
    let (_t, dest) = setup();
    let mut b = tar::Builder::new(Vec::new());
    b.append_pax_extensions([
        ("SCHILY.xattr.user.overlay.opaque", &b"y"[..]),
        ("SCHILY.xattr.user.overlay.redirect", &b"/elsewhere"[..]),
        ("SCHILY.xattr.trusted.overlay.opaque", &b"y"[..]),
        ("SCHILY.xattr.user.kept", &b"1"[..]),
    ])
    .unwrap();
    let mut h = tar::Header::new_gnu();
    h.set_path("etc/").unwrap();
    h.set_entry_type(tar::EntryType::Directory);
    h.set_mode(0o755);
    h.set_size(0);
    h.set_cksum();
    b.append(&h, &b""[..]).unwrap();
    b.append_pax_extensions([("SCHILY.xattr.user.overlay.whiteout", &b"y"[..])])
        .unwrap();
    let mut h = tar::Header::new_gnu();
    h.set_path("etc/file").unwrap();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_mode(0o644);
    h.set_size(1);
    h.set_cksum();
    b.append(&h, &b"x"[..]).unwrap();
    let bytes = b.into_inner().unwrap();
    unpack(&bytes, &dest).unwrap();
    let has =
        |p: &str, x: &str| rustix::fs::lgetxattr(dest.join(p).as_path(), x, &mut [0u8; 64]).is_ok();
    for x in [
        "user.overlay.opaque",
        "user.overlay.redirect",
        "trusted.overlay.opaque",
    ] {
        assert!(!has("etc", x), "{x} must not be written");
    }
    assert!(!has("etc/file", "user.overlay.whiteout"));
    // The control: the same path writes ordinary xattrs where the file system takes them.
    let probe = dest.join("probe");
    std::fs::write(&probe, b"").unwrap();
    let fs_takes_user_xattrs = rustix::fs::setxattr(
        probe.as_path(),
        "user.t",
        b"1",
        rustix::fs::XattrFlags::empty(),
    )
    .is_ok();
    assert_eq!(has("etc", "user.kept"), fs_takes_user_xattrs);
    // The opaque marker still makes the real thing.
    let (_t, dest) = setup();
    let marker = tar_of(&[
        e("d/", tar::EntryType::Directory),
        e("d/.wh..wh..opq", tar::EntryType::Regular),
    ]);
    unpack(&marker, &dest).unwrap();
    assert_eq!(
        rustix::fs::lgetxattr(dest.join("d").as_path(), OPAQUE_XATTR, &mut [0u8; 4]).ok(),
        fs_takes_user_xattrs.then_some(1)
    );
}

#[test]
fn gzip_and_zstd_are_sniffed() {
    let mut f = e("f", tar::EntryType::Regular);
    f.data = b"content";
    let plain = tar_of(&[f]);
    let diff = Digest::of(&plain);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&plain).unwrap();
    let gz = gz.finish().unwrap();
    let zs = zstd::encode_all(io::Cursor::new(plain.clone()), 1).unwrap();
    for blob in [gz, zs] {
        let (_t, dest) = setup();
        unpack_stream(
            io::Cursor::new(blob),
            &diff,
            &dest,
            UnpackOptions::default(),
        )
        .unwrap();
        assert_eq!(std::fs::read(dest.join("f")).unwrap(), b"content");
    }
}

#[test]
fn device_nodes_are_created_or_skipped_with_a_count() {
    let (_t, dest) = setup();
    let mut h = tar::Header::new_gnu();
    h.set_path("dev/null").unwrap();
    h.set_entry_type(tar::EntryType::Char);
    h.set_device_major(1).unwrap();
    h.set_device_minor(3).unwrap();
    h.set_mode(0o666);
    h.set_size(0);
    h.set_cksum();
    let mut b = tar::Builder::new(Vec::new());
    b.append(&h, &b""[..]).unwrap();
    let bytes = b.into_inner().unwrap();
    let rep = unpack(&bytes, &dest).unwrap();
    let exists = dest.join("dev/null").symlink_metadata().is_ok();
    assert!(
        exists != (rep.skipped_devices == 1),
        "created={exists} skipped={}",
        rep.skipped_devices
    );
}

#[test]
fn directories_without_permissions_are_removed() {
    let (_t, dest) = setup();
    std::fs::create_dir_all(dest.join("work/work/inner")).unwrap();
    std::fs::write(dest.join("work/work/inner/f"), b"x").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        dest.join("work/work/inner"),
        std::fs::Permissions::from_mode(0o000),
    )
    .unwrap();
    std::fs::set_permissions(
        dest.join("work/work"),
        std::fs::Permissions::from_mode(0o000),
    )
    .unwrap();
    remove_tree(&dest).unwrap();
    assert!(!dest.exists());
}

#[test]
fn pax_mtimes_keep_their_nanoseconds() {
    let (_t, dest) = setup();
    let mut b = tar::Builder::new(Vec::new());
    for (path, kind, t) in [
        ("d/", tar::EntryType::Directory, "1600000000.5"),
        ("d/f", tar::EntryType::Regular, "1600000000.123456789123"),
        ("d/old", tar::EntryType::Regular, "-1.25"),
    ] {
        b.append_pax_extensions([("mtime", t.as_bytes())]).unwrap();
        let mut h = tar::Header::new_ustar();
        h.set_path(path).unwrap();
        h.set_entry_type(kind);
        h.set_mode(0o755);
        h.set_mtime(1_600_000_000);
        h.set_size(0);
        h.set_cksum();
        b.append(&h, &b""[..]).unwrap();
    }
    unpack(&b.into_inner().unwrap(), &dest).unwrap();
    let f = std::fs::metadata(dest.join("d/f")).unwrap();
    assert_eq!((f.mtime(), f.mtime_nsec()), (1_600_000_000, 123_456_789));
    let d = std::fs::metadata(dest.join("d")).unwrap();
    assert_eq!((d.mtime(), d.mtime_nsec()), (1_600_000_000, 500_000_000));
    let o = std::fs::metadata(dest.join("d/old")).unwrap();
    assert_eq!((o.mtime(), o.mtime_nsec()), (-2, 750_000_000));
}

#[test]
fn pax_times_parse_or_are_refused() {
    let t = |v: &str| super::parse_pax_time(v).map(|t| (t.tv_sec, t.tv_nsec));
    assert_eq!(t("12"), Some((12, 0)));
    assert_eq!(t("12.000000001"), Some((12, 1)));
    assert_eq!(t("-0.5"), Some((-1, 500_000_000)));
    assert_eq!(t("x"), None);
    assert_eq!(t("1.2e3"), None);
    assert_eq!(t(""), None);
}

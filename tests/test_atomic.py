"""The writer everything goes through: whole files or none, never over something that is not a regular file."""

import os
import subprocess
import sys

import pytest

from autocomplete import atomic
from autocomplete.errors import OutputError


def write_text(text):
    return lambda f: f.write(text.encode())


def test_an_atomic_write_replaces_a_regular_file_whole(tmp_path):
    path = tmp_path / "m.pt"
    path.write_text("old")
    atomic.atomic_write(path, write_text("new"))
    assert path.read_text() == "new" and [p.name for p in tmp_path.iterdir()] == ["m.pt"]


def test_the_writer_refuses_to_replace_a_named_pipe(tmp_path):
    # issue 10, item 2: the node was replaced by a regular file
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(OutputError, match="is a named pipe"):
        atomic.atomic_write(fifo, write_text("model"))
    assert fifo.is_fifo() and [p.name for p in tmp_path.iterdir()] == ["pipe"]


def test_a_device_node_is_refused_as_an_output():
    # (checked, not written: a test that failed by replacing /dev/null as root would break the machine)
    with pytest.raises(OutputError, match="/dev/null: is a device"):
        atomic.check_writable("/dev/null")


def test_the_writer_refuses_to_replace_a_folder(tmp_path):
    (tmp_path / "d").mkdir()
    with pytest.raises(OutputError, match="is a folder"):
        atomic.atomic_write(tmp_path / "d", write_text("model"))


def test_a_symlink_is_written_through_to_its_target_and_stays_a_link(tmp_path):
    target = tmp_path / "models" / "v3.pt"
    target.parent.mkdir()
    target.write_text("v3")
    link = tmp_path / "current.pt"
    link.symlink_to(target)
    atomic.atomic_write(link, write_text("v4"))
    assert link.is_symlink() and target.read_text() == "v4"
    assert sorted(p.name for p in target.parent.iterdir()) == ["v3.pt"]


def test_a_symlink_to_a_device_is_refused(tmp_path):
    link = tmp_path / "null.pt"
    link.symlink_to("/dev/null")
    with pytest.raises(OutputError, match="is a device"):
        atomic.check_writable(link)
    assert link.is_symlink()


def test_an_unwritable_destination_is_reported_before_any_work(tmp_path):
    with pytest.raises(OutputError, match="does not exist"):
        atomic.check_writable(tmp_path / "missing" / "m.pt")
    with pytest.raises(OutputError, match="is a folder"):
        atomic.check_writable(tmp_path)
    locked = tmp_path / "ro"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if not os.access(locked, os.W_OK):
            with pytest.raises(OutputError, match="cannot write"):
                atomic.check_writable(locked / "m.pt")
    finally:
        locked.chmod(0o700)


def test_same_file_sees_through_links_and_relative_paths(tmp_path, monkeypatch):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("words")
    (tmp_path / "hard.txt").hardlink_to(corpus)
    (tmp_path / "soft.txt").symlink_to(corpus)
    monkeypatch.chdir(tmp_path)
    assert atomic.same_file("corpus.txt", corpus)
    assert atomic.same_file(tmp_path / "hard.txt", corpus) and atomic.same_file("soft.txt", corpus)
    assert atomic.same_file("./sub/../new.pt", tmp_path / "new.pt")  # neither exists yet
    assert not atomic.same_file("new.pt", corpus)


HOLD = """
import sys, time
from autocomplete import atomic
with atomic.exclusive_lock(sys.argv[1]):
    print("locked", flush=True)
    time.sleep(30)
"""


def test_a_second_writer_of_a_locked_output_is_refused_naming_the_first(tmp_path):
    # issue 10, item 5: two trainings on one -o, last writer won silently
    out = tmp_path / "m.pt"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(out)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(OutputError, match=rf"another training \(process {holder.pid}\) is writing this file"):
            with atomic.exclusive_lock(out):
                pass
    finally:
        holder.kill()
        holder.wait()
    with atomic.exclusive_lock(out):  # the holder died: its lock went with it
        assert atomic.lock_path(out).exists()
    assert not atomic.lock_path(out).exists()  # released and tidied


def test_the_leftovers_of_saves_a_kill_cut_short_are_removed_and_nothing_else(tmp_path):
    leftovers = [tmp_path / ".m.pt.k3x_9q0a.tmp", tmp_path / ".m.pt.zz0011aa.probe"]
    kept = [tmp_path / "m.pt", tmp_path / ".m.pt.resume.k3x_9q0a.tmp", tmp_path / ".other.pt.k3x_9q0a.tmp",
            tmp_path / ".m.pt.my-notes.tmp", tmp_path / "m.pt.k3x_9q0a.tmp"]
    for path in leftovers + kept:
        path.write_text("partial")
    assert sorted(atomic.remove_leftovers(tmp_path / "m.pt")) == sorted((p, 7) for p in leftovers)
    assert sorted(tmp_path.iterdir()) == sorted(kept)
    assert atomic.remove_leftovers(tmp_path / "m.pt.resume") == [(tmp_path / ".m.pt.resume.k3x_9q0a.tmp", 7)]


def test_a_symlink_at_the_lock_s_place_is_refused_naming_it_and_its_target_is_untouched(tmp_path):
    # tester h, bug 3: the link was followed and the file it pointed at replaced by the process number
    precious = tmp_path / "precious.txt"
    precious.write_text("precious notes\nline 2\n")
    (tmp_path / "out.pt.lock").symlink_to(precious)
    with pytest.raises(OutputError, match=r"out\.pt\.lock: is a symbolic link, not a lock file; remove it") as e:
        with atomic.exclusive_lock(tmp_path / "out.pt"):
            pass
    assert "\n" not in str(e.value)
    assert precious.read_text() == "precious notes\nline 2\n" and (tmp_path / "out.pt.lock").is_symlink()


def test_a_dangling_symlink_at_the_lock_s_place_creates_nothing_where_it_points(tmp_path):
    (tmp_path / "out.pt.lock").symlink_to(tmp_path / "made-by-the-lock")
    with pytest.raises(OutputError, match="is a symbolic link"):
        with atomic.exclusive_lock(tmp_path / "out.pt"):
            pass
    assert not (tmp_path / "made-by-the-lock").exists()


@pytest.mark.parametrize("make", ["hard link", "other data"])
def test_a_file_at_the_lock_s_place_that_no_lock_made_is_refused_and_left_whole(tmp_path, make):
    notes = tmp_path / "notes.txt"
    notes.write_text("notes")
    lock = tmp_path / "out.pt.lock"
    if make == "hard link":
        lock.hardlink_to(notes)
    else:
        lock.write_text("not a process number, and longer than one")
    with pytest.raises(OutputError, match=r"out\.pt\.lock: .*, not a lock file; remove it to go on"):
        with atomic.exclusive_lock(tmp_path / "out.pt"):
            pass
    assert notes.read_text() == "notes" and lock.exists()


def test_the_lock_file_a_killed_holder_left_behind_is_taken_over(tmp_path):
    lock = tmp_path / "out.pt.lock"
    lock.write_text("999999")  # kill -9 leaves it: no process holds it
    with atomic.exclusive_lock(tmp_path / "out.pt"):
        assert lock.read_text() == str(os.getpid())
    assert not lock.exists()

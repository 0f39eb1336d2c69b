"""Download folders: one fresh folder per file, folders older than the age limit swept on the next write."""

import os
import time

from serving.downloads import write_download


def test_old_download_folders_are_swept_on_the_next_write(tmp_path):
    old = write_download("old", "a.csv", "test", root=tmp_path)
    recent = write_download(b"recent", "b.ics", "test", root=tmp_path)
    hour_ago = time.time() - 3601
    os.utime(old.parent, (hour_ago, hour_ago))
    new = write_download("new", "c.md", "test", root=tmp_path)
    assert not old.parent.exists() and recent.read_bytes() == b"recent" and new.read_text() == "new"
    assert sorted(p.name for p in (tmp_path / "iris-test").iterdir()) == sorted([recent.parent.name,
                                                                               new.parent.name])


def test_many_writes_stay_bounded_by_the_age_limit(tmp_path):
    for i in range(20):
        write_download(str(i), "x.csv", "test", max_age_s=0.0, root=tmp_path)
    assert len(list((tmp_path / "iris-test").iterdir())) <= 2

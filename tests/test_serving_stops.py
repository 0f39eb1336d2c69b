"""Stop flags: one Stop press reaches every run of its conversation, and runs never clear each other's flag."""

from serving.stops import StopFlags


def test_stop_reaches_every_run_of_the_conversation_and_only_it():
    flags = StopFlags()
    with flags.run("c1") as first, flags.run("c1") as second, flags.run("c2") as other:
        assert flags.stop("c1") == 2
        assert first.is_set() and second.is_set() and not other.is_set()
    assert flags.running("c1") == 0 and flags.stop("c1") == 0


def test_a_run_ending_does_not_unregister_a_run_still_going():
    flags = StopFlags()
    with flags.run("c1") as still_going:
        with flags.run("c1") as finished:
            pass
        assert not finished.is_set()
        flags.stop("c1")
        assert still_going.is_set()  # the earlier run's end did not take its flag away

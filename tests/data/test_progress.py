import io

from ecgtune.data.progress import steps


def test_a_slow_step_shows_a_bar_with_what_it_is_doing():
    out = io.StringIO()
    assert list(steps([1, 2, 3], what="mitdb: preparing", file=out, delay=0)) == [1, 2, 3]
    assert "mitdb: preparing" in out.getvalue() and "/3 " in out.getvalue()  # the bar, with its total


def test_no_bar_in_a_log_or_before_the_delay():
    class Log(io.StringIO):
        def isatty(self):
            return False

    import sys

    saved, sys.stderr = sys.stderr, Log()
    try:
        assert list(steps(range(3), what="x")) == [0, 1, 2]
        assert sys.stderr.getvalue() == ""
    finally:
        sys.stderr = saved
    quick = io.StringIO()
    assert list(steps(range(3), what="x", file=quick, delay=60)) == [0, 1, 2]
    assert quick.getvalue() == ""  # done before the bar was due

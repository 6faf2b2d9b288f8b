import io

from autocomplete.progress import Progress, choose_mode, duration


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_gets_a_bar_and_a_file_gets_plain_lines():
    assert choose_mode(stream=Terminal()) == "bar"
    assert choose_mode(stream=io.StringIO()) == "lines"
    assert choose_mode(quiet=True, stream=Terminal()) == "off"


def test_plain_lines_say_how_far_the_run_is_and_how_long_is_left():
    lines: list[str] = []
    progress = Progress(10, "lines", lines.append, "evaluating", unit="word", interval=0)
    progress.update(4, perplexity="33.1")
    assert len(lines) == 1 and lines[0].startswith("evaluating: 4/10 words (40%), perplexity 33.1, about ")
    assert lines[0].endswith(" left") and "\r" not in lines[0]


def test_plain_lines_come_at_most_once_per_interval():
    lines: list[str] = []
    progress = Progress(1000, "lines", lines.append, "training", interval=3600)
    for _ in range(1000):
        progress.update(1)
    assert lines == []


def test_a_bar_draws_on_its_stream_and_messages_go_above_it():
    stream, said = Terminal(), []
    progress = Progress(5, "bar", said.append, "training", file=stream)
    progress.update(2, loss="3.2")
    progress.write("epoch 1/5: no validation")
    progress.close()
    assert "training" in stream.getvalue() and said == ["epoch 1/5: no validation"]


def test_durations_read_like_a_person_would_say_them():
    assert [duration(s) for s in (4.2, 300, 7627.8)] == ["4 s", "5 min", "2 h 7 min"]

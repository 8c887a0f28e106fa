from core.progress import progress


def test_progress_is_silent_when_disabled(capsys):
    assert list(progress(range(3), desc="x", enabled=False)) == [0, 1, 2]
    assert capsys.readouterr().err == ""

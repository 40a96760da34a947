from datetime import timedelta

from django.utils import timezone

from bms import clock


def test_advance_moves_now_forward():
    before = clock.now()
    clock.advance(seconds=3600)
    assert clock.now() - before >= timedelta(seconds=3600)
    assert clock.now() - timezone.now() >= timedelta(seconds=3599)


def test_offset_file_moves_other_processes_clocks(tmp_path, monkeypatch):
    offset = tmp_path / "offset"
    offset.write_text("86400")
    monkeypatch.setenv("BMS_CLOCK_OFFSET_FILE", str(offset))
    assert clock.now() - timezone.now() >= timedelta(seconds=86399)


def test_today_in_uses_the_entitys_time_zone():
    # 11:30 UTC is already the next day in Auckland (UTC+13 in November).
    clock.advance(
        seconds=(timezone.now().replace(hour=11, minute=30) - timezone.now()).total_seconds()
    )
    utc_day = clock.now().date()
    assert clock.today_in("Pacific/Auckland") == utc_day + timedelta(days=1)
    assert clock.today_in("UTC") == utc_day

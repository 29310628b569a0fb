import re
import threading

from medisys_app.metrics import BUCKETS, Metrics, escape_label


def test_empty_registry_has_app_info_and_type_lines():
    text = Metrics("dev-app-1", "1.0.0").render()
    assert 'app_info{server="dev-app-1",version="1.0.0"} 1' in text
    assert "# TYPE http_requests_total counter" in text
    assert "# TYPE http_request_duration_seconds histogram" in text
    assert text.endswith("\n")


def test_counter_and_histogram_lines():
    m = Metrics("dev-app-1")
    m.observe("GET", "/api/notes/{id}", 200, 0.003)
    m.observe("GET", "/api/notes/{id}", 200, 0.2)
    m.observe("GET", "/api/notes/{id}", 404, 3.0)
    text = m.render()
    assert 'http_requests_total{method="GET",route="/api/notes/{id}",status="200"} 2' in text
    assert 'http_requests_total{method="GET",route="/api/notes/{id}",status="404"} 1' in text
    b = 'http_request_duration_seconds_bucket{route="/api/notes/{id}",le="%s"} %d'
    assert b % ("0.005", 1) in text
    assert b % ("0.1", 1) in text
    assert b % ("0.25", 2) in text
    assert b % ("2.5", 2) in text
    assert b % ("+Inf", 3) in text
    assert 'http_request_duration_seconds_count{route="/api/notes/{id}"} 3' in text
    total = re.search(r'http_request_duration_seconds_sum\{route="/api/notes/\{id\}"\} (\S+)', text)
    assert abs(float(total.group(1)) - 3.203) < 1e-9


def test_buckets_cover_required_range_and_are_cumulative():
    assert BUCKETS[0] == 0.005 and BUCKETS[-1] == 2.5
    m = Metrics("x")
    for value in (0.001, 0.02, 0.3, 1.5, 9):
        m.observe("GET", "/", 200, value)
    counts = [int(line.rsplit(" ", 1)[1]) for line in m.render().splitlines()
              if line.startswith("http_request_duration_seconds_bucket")]
    assert len(counts) == len(BUCKETS) + 1
    assert counts == sorted(counts) and counts[-1] == 5


def test_every_sample_line_is_well_formed():
    m = Metrics('we"ird\\name')
    m.observe("POST", "/api/notes", 201, 0.01)
    sample = re.compile(r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-z_]+="([^"\\\n]|\\.)*",?)*\})? \S+$')
    for line in m.render().splitlines():
        assert line.startswith("# ") or sample.match(line), line


def test_label_escaping():
    assert escape_label('a"b\\c\nd') == 'a\\"b\\\\c\\nd'


def test_concurrent_observations_are_not_lost():
    m = Metrics("x")

    def work():
        for _ in range(1000):
            m.observe("GET", "/health", 200, 0.001)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert 'http_requests_total{method="GET",route="/health",status="200"} 8000' in m.render()


def test_memory_limit_reads_cgroup_v2_and_ignores_unlimited(tmp_path):
    from medisys_app.metrics import memory_limit_bytes

    limited = tmp_path / "memory.max"
    limited.write_text("268435456\n")
    assert memory_limit_bytes((str(limited),)) == 268435456
    unlimited = tmp_path / "unlimited"
    unlimited.write_text("max\n")
    assert memory_limit_bytes((str(unlimited),)) is None


def test_resident_memory_is_read_from_proc_status(tmp_path):
    from medisys_app.metrics import resident_memory_bytes

    status = tmp_path / "status"
    status.write_text("Name:\tpython3\nVmRSS:\t  2048 kB\n")
    assert resident_memory_bytes(str(status)) == 2048 * 1024

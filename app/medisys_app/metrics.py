"""Thread-safe request metrics rendered in Prometheus text format 0.0.4."""

import threading

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


def escape_label(value):
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(**labels):
    inner = ",".join(f'{k}="{escape_label(v)}"' for k, v in labels.items())
    return "{" + inner + "}"


def _number(value):
    if value == float("inf"):
        return "+Inf"
    return repr(float(value)) if isinstance(value, float) else str(value)


def resident_memory_bytes(status_path="/proc/self/status"):
    """This process's resident set size, or None where /proc is not there."""
    try:
        with open(status_path) as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def memory_limit_bytes(paths=("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes")):
    """The container's memory limit (cgroup v2 or v1), or None when unlimited or unknown."""
    for path in paths:
        try:
            with open(path) as limit_file:
                raw = limit_file.read().strip()
        except OSError:
            continue
        # cgroup v1 reports "no limit" as a huge number close to 2**63.
        if raw.isdigit() and int(raw) < 2**60:
            return int(raw)
        return None
    return None


class Metrics:
    def __init__(self, server_name, version=""):
        self.server_name = server_name
        self.version = version
        self._lock = threading.Lock()
        self._requests = {}  # (method, route, status) -> count
        self._durations = {}  # route -> [bucket counts..., sum, count]

    def observe(self, method, route, status, seconds):
        with self._lock:
            key = (method, route, str(status))
            self._requests[key] = self._requests.get(key, 0) + 1
            hist = self._durations.setdefault(route, [0] * len(BUCKETS) + [0.0, 0])
            for i, bound in enumerate(BUCKETS):
                if seconds <= bound:
                    hist[i] += 1  # buckets are cumulative: count in every bound above
            hist[-2] += seconds
            hist[-1] += 1

    def render(self):
        with self._lock:
            requests = sorted(self._requests.items())
            durations = sorted((r, list(h)) for r, h in self._durations.items())
        lines = [
            "# HELP app_info Static information about this application instance.",
            "# TYPE app_info gauge",
            f"app_info{_labels(server=self.server_name, version=self.version)} 1",
            "# HELP http_requests_total HTTP requests handled, by method, route and status.",
            "# TYPE http_requests_total counter",
        ]
        for (method, route, status), count in requests:
            labels = _labels(method=method, route=route, status=status)
            lines.append(f"http_requests_total{labels} {count}")
        lines += [
            "# HELP http_request_duration_seconds HTTP request duration, by route.",
            "# TYPE http_request_duration_seconds histogram",
        ]
        for route, hist in durations:
            for bound, count in zip(BUCKETS + (float("inf"),), hist[: len(BUCKETS)] + [hist[-1]]):
                labels = _labels(route=route, le=_number(bound))
                lines.append(f"http_request_duration_seconds_bucket{labels} {count}")
            lines.append(f"http_request_duration_seconds_sum{_labels(route=route)} {_number(hist[-2])}")
            lines.append(f"http_request_duration_seconds_count{_labels(route=route)} {hist[-1]}")
        lines += self._memory_lines()
        return "\n".join(lines) + "\n"

    def _memory_lines(self):
        # Lets the platform alert before the container reaches its memory limit.
        lines = []
        rss = resident_memory_bytes()
        if rss is not None:
            lines += [
                "# HELP process_resident_memory_bytes Resident memory of the app process.",
                "# TYPE process_resident_memory_bytes gauge",
                f"process_resident_memory_bytes {rss}",
            ]
        limit = memory_limit_bytes()
        if limit is not None:
            lines += [
                "# HELP app_memory_limit_bytes Memory limit of the app's container.",
                "# TYPE app_memory_limit_bytes gauge",
                f"app_memory_limit_bytes {limit}",
            ]
        return lines

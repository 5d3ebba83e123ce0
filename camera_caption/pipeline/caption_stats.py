"""
Rolling figures for the diagnostics: rates, latency, inference time.

No ROS import.  Counters only go up; :meth:`RateWindow.per_second` turns
them into rates over the last report period.
"""

from collections import deque

from camera_caption.utilities.rate_window import RateWindow


class Stat:
    """Last value and mean over the last ``size`` values."""

    def __init__(self, size=100):
        self._values = deque(maxlen=size)
        self.last = None

    def add(self, value):
        """Record a value."""
        self.last = value
        self._values.append(value)

    @property
    def mean(self):
        """Mean of the recent values (None before the first)."""
        return sum(self._values) / len(self._values) if self._values \
            else None


class CaptionerFigures:
    """
    Everything the captioner reports on ``/diagnostics``, in one place.

    The node counts frames and captions here as they happen; :meth:`report`
    joins them with the worker's and the backend's snapshots into the
    figures, and says what is wrong, if anything.
    """

    def __init__(self, topics=()):
        self.frames_in = RateWindow()
        self.frames_in_by_topic = {t: RateWindow() for t in topics}
        self.captions_out = RateWindow()
        self.latency = Stat()          # image stamp -> caption published
        self.inference = Stat()
        self.skipped_frames = 0        # frames refused by conversion
        self.published = 0
        self._dropped_seen = 0

    def frame_in(self, topic):
        """Count a frame handed to the worker."""
        self.frames_in.add()
        self.frames_in_by_topic.setdefault(topic, RateWindow()).add()

    def frame_skipped(self):
        """Count a frame that could not be converted."""
        self.skipped_frames += 1

    def caption_out(self, latency, inference):
        """Count a published caption and its timings (seconds)."""
        self.latency.add(latency)
        self.inference.add(inference)
        self.captions_out.add()
        self.published += 1

    def report(self, settings, latency_warn_s, worker, backend, problem,
               routes):
        """
        Return ``(warning, summary, values)`` for one diagnostics status.

        ``worker`` and ``backend`` are their ``stats()`` snapshots,
        ``problem`` the backend's (``''`` when healthy), ``routes`` one
        dict per image topic: ``topic`` (its full name), ``key`` (as the
        frames are counted), ``reliability`` (subscribed) and ``offered``
        (one reliability per publisher).  ``warning`` is ``''`` when all is
        well, else the one thing to say first.
        """
        from camera_caption.pipeline.qos_choice import starvation_warning
        dropped = worker['frames_dropped']
        values = {
            'enabled': settings.enable,
            'frames_in_per_s': self.frames_in.per_second(),
            'captions_per_s': self.captions_out.per_second(),
            'frames_dropped_by_throttle': dropped - self._dropped_seen,
            'frames_dropped_total': dropped,
            'frames_skipped_bad': self.skipped_frames,
            'captions_total': self.published,
            'inference_errors': worker['inference_errors'],
            'latency_last_s': self.latency.last,
            'latency_mean_s': self.latency.mean,
            'inference_last_s': self.inference.last,
            'inference_mean_s': self.inference.mean,
            'scene_gate_passed': worker['scene_gate_passed'],
            'scene_gate_skipped': worker['scene_gate_skipped'],
            'scene_difference_last': worker['scene_difference_last'],
            'dedupe_suppressed': worker['dedupe_suppressed'],
            'batch_size_last': worker['batch_size_last'],
            'image_topics': ','.join(r['topic'] for r in routes),
            'rate_hz': settings.rate_hz,
            'reliability': ','.join(r['reliability'] for r in routes),
            'publishers_offer': ';'.join(
                ','.join(r['offered']) or '-' for r in routes),
        }
        values.update(backend)
        self._dropped_seen = dropped
        starved = [starvation_warning(
            r['topic'], self.frames_in_by_topic.setdefault(
                r['key'], RateWindow()).per_second(), settings.rate_hz,
            r['reliability'], r['offered']) for r in routes]
        starved = [line for line in starved if line]
        warning = ''
        if settings.enable and values['frames_in_per_s'] == 0:
            warning = 'no frames arriving on ' + ', '.join(
                r['topic'] for r in routes)
        elif settings.enable and starved:
            warning = '; '.join(starved)
        elif (self.latency.mean or 0) > latency_warn_s:
            warning = (f'mean latency {self.latency.mean:.2f} s exceeds '
                       f'latency_warn_s {latency_warn_s:g} s')
        elif problem:
            warning = problem
        summary = 'captioning' if settings.enable else 'paused'
        return warning, summary, values

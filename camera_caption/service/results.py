"""
What the caption service hands the node: typed results, ready to publish.

No ROS import.  The node turns each into messages: ``text`` onto
``caption`` (or ``answer``), :meth:`CaptionOut.info_json` onto
``caption_info``, each of :meth:`CaptionOut.event_jsons` onto
``caption_event`` (and :meth:`AnswerOut.info_json` onto ``answer_info``).
JSON keeps non-ASCII text as it is, so that Japanese stays readable in
``ros2 topic echo``.
"""

from dataclasses import dataclass, field
import json


def _json(values):
    return json.dumps(values, ensure_ascii=False)


@dataclass
class CaptionOut:
    """One caption of one camera's frame (or clip)."""

    topic: str                    # the camera's image topic, as configured
    camera: str                   # the same, fully resolved (as subscribed)
    text: str
    frame: object                 # the Frame captioned (image, stamp, header)
    inference_s: float
    latency_s: float              # image stamp to now
    clip_first: float = None      # clip mode: first and last image stamps
    clip_last: float = None
    clip_frames: int = 0
    events: list = field(default_factory=list)   # watch patterns that fired
    path: dict = field(default_factory=dict)     # backend.path(): how

    def info_json(self):
        """Return the ``caption_info`` JSON."""
        info = {'stamp': self.frame.stamp, 'frame_id': self.frame.frame_id,
                'image_topic': self.camera, 'caption': self.text,
                'inference_s': round(self.inference_s, 4),
                'latency_s': round(self.latency_s, 4)}
        info.update(self.path)
        if self.clip_frames:
            info.update(clip_first_stamp=self.clip_first,
                        clip_last_stamp=self.clip_last,
                        clip_frames=self.clip_frames)
        return _json(info)

    def event_jsons(self):
        """Return one ``caption_event`` JSON per pattern that fired."""
        return [_json({'pattern': pattern, 'caption': self.text,
                       'camera': self.camera, 'stamp': self.frame.stamp})
                for pattern in self.events]


@dataclass
class AnswerOut:
    """The answer to a question, on one camera's newest frame."""

    topic: str
    camera: str
    question: str
    question_number: int
    text: str
    frame: object
    inference_s: float
    latency_s: float              # question received to now

    def info_json(self):
        """Return the ``answer_info`` JSON."""
        return _json({
            'question': self.question, 'answer': self.text,
            'camera': self.camera, 'stamp': self.frame.stamp,
            'frame_id': self.frame.frame_id,
            'question_number': self.question_number,
            'inference_s': round(self.inference_s, 4),
            'latency_s': round(self.latency_s, 4)})

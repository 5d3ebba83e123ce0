"""
caption_memory node: store every caption; answer ``recall`` from the store.

Subscribes to ``caption_info`` of every camera (or ``memory_topics``) and
stores each caption in the caption memory (SQLite, or PostgreSQL with
``memory_url``), optionally with a thumbnail from ``caption_image/
compressed`` and the pose of the image's ``frame_id`` from tf.  A
``std_msgs/String`` on ``recall`` (free text or JSON) is answered on
``recall_result`` as JSON.  Bad input gets one rate-limited line and a
count in ``/diagnostics``; a caption that cannot be written now is kept
and written when the database takes it again.
"""

import collections
import json
import socket
import threading

from camera_caption.contract.parameters import (CAPTION_MEMORY_PARAMETERS,
                                                image_topic_list)
from camera_caption.memory.open_store import describe, open_store
from camera_caption.memory.recall_query import parse_request
from camera_caption.memory.records import (MemoryInputError,
                                           MemoryStoreError,
                                           record_from_info)
from camera_caption.memory.sqlite_store import set_aside
from camera_caption.memory.summary import summarize, SummaryError
from camera_caption.nodes.node_runner import exit_now, run_node
from camera_caption.nodes.ros_diagnostics import DiagnosticsPublisher, OK, WARN
from camera_caption.nodes.ros_parameters import declare_parameters
from camera_caption.nodes.tf_pose import pose_lookup
from camera_caption.utilities.jpeg import shrink_jpeg
from camera_caption.utilities.safe_text import safe_text
from camera_caption.utilities.throttles import LogThrottle
from rclpy.node import Node
from sensor_msgs.msg import CompressedImage
from std_msgs.msg import String

INFO_SUFFIX = 'caption_info'
THUMBNAIL_SUFFIX = 'caption_image/compressed'
STRING_TYPE = 'std_msgs/msg/String'
# Captions kept in memory while the database refuses them (full, locked).
PENDING_MAX = 10000
# Thumbnails that came before their caption, per camera.
EARLY_THUMBNAILS = 32


class CaptionMemoryNode(Node):
    """Store ``caption_info`` of every camera; answer ``recall``."""

    node_name = 'caption_memory'   # also what start-up errors are logged as

    def __init__(self, **kwargs):
        self.store = None   # set first: destroy_node() runs on failure too
        super().__init__('caption_memory', **kwargs)
        p = self.params = declare_parameters(self, CAPTION_MEMORY_PARAMETERS)
        self.robot = p['memory_robot'] or socket.gethostname()
        self.counts = collections.Counter()
        self.pending = collections.deque()
        self._summarizing = False
        self._warn = LogThrottle(5.0).bound(self.get_logger().warning)
        self.store = self._open()
        self._info_subscriptions = {}       # caption_info topic -> subscription
        self._thumbnails = {}          # its prefix -> (subscription, early)
        self._camera_of = {}           # prefix -> camera named in its info
        self._poses = pose_lookup(self, p['memory_fixed_frame'])
        self.recall_subscription = self.create_subscription(
            String, 'recall', self._on_recall, 10)
        self.result_publisher = self.create_publisher(
            String, 'recall_result', 10)
        self.diagnostics = DiagnosticsPublisher(self, describe(self.store),
                                                self._diagnostics)
        self._follow_topics()
        self.timer = self.create_timer(1.0, self._tick)
        self.get_logger().info(
            f'storing captions in {describe(self.store)} ({self.store.rows} '
            f'stored); recall on {self.recall_subscription.topic_name}')

    # -- the store -----------------------------------------------------
    def _open(self):
        p = self.params
        try:
            store = open_store(p['memory_path'], p['memory_url'])
        except MemoryStoreError as exc:
            if not exc.corrupt:          # only a SQLite file can be
                raise
            try:
                aside = set_aside(exc.path)
            except OSError:
                raise exc from None
            self.get_logger().error(
                f'{exc}; moved it to {aside} (nothing deleted) and started a '
                'new memory')
            self.counts['corrupt_set_aside'] += 1
            store = open_store(p['memory_path'], '')
        if store.read_only:
            self.get_logger().error(
                f'{describe(store)} is read-only: recall answers from it, '
                'but new captions are not stored')
        return store

    def _store(self, record):
        if self.store.read_only:
            self.counts['not_stored'] += 1
            return
        if self.pending:                 # keep the order: retry first
            self._retry()
        if self.pending:
            self._keep(record)
            return
        try:
            _, new = self.store.add(record)
        except MemoryStoreError as exc:
            self.counts['write_failures'] += 1
            self._keep(record)
            self._warn('write', f'{exc}; keeping {len(self.pending)} '
                       'caption(s) to write when it works again')
            return
        self.counts['rows_added' if new else 'repeats'] += 1

    def _keep(self, record):
        self.counts['kept_to_retry'] += 1
        if len(self.pending) >= PENDING_MAX:
            self.pending.popleft()
            self.counts['dropped'] += 1
        self.pending.append(record)

    def _retry(self):
        while self.pending:
            try:
                _, new = self.store.add(self.pending[0])
            except MemoryStoreError:
                self.counts['write_failures'] += 1
                return
            self.pending.popleft()
            self.counts['rows_added' if new else 'repeats'] += 1

    def _tick(self):
        self._follow_topics()
        if self.pending:
            self._retry()
        p = self.params
        if self.store.read_only:
            return
        try:
            self.counts['retention_deleted'] += self.store.enforce_retention(
                p['memory_max_age_s'], p['memory_max_rows'], p['memory_max_mb'])
        except MemoryStoreError as exc:
            self._warn('retention', f'retention: {exc}')

    # -- the topics ----------------------------------------------------
    def _follow_topics(self):
        wanted = self.params['memory_topics']
        if wanted:
            topics = [self.resolve_topic_name(t)
                      for t in image_topic_list(wanted)]
        else:
            topics = [name for name, types in self.get_topic_names_and_types()
                      if name.endswith(INFO_SUFFIX) and STRING_TYPE in types]
        for topic in topics:
            if topic in self._info_subscriptions:
                continue
            self._info_subscriptions[topic] = self.create_subscription(
                String, topic, lambda msg, t=topic: self._on_info(msg, t), 50)
            self.get_logger().info(f'storing the captions of {topic}')
            if self.params['memory_thumbnails']:
                self._follow_thumbnails(topic[:-len(INFO_SUFFIX)])

    def _follow_thumbnails(self, prefix):
        early = collections.OrderedDict()
        sub = self.create_subscription(
            CompressedImage, prefix + THUMBNAIL_SUFFIX,
            lambda msg: self._on_thumbnail(msg, prefix, early), 2)
        self._thumbnails[prefix] = (sub, early)

    def _on_info(self, msg, topic):
        try:
            record = record_from_info(msg.data, topic)
        except MemoryInputError as exc:
            self.counts['bad_caption_info'] += 1
            self._warn(('info', topic), f'{topic}: {exc}; not stored')
            return
        record.robot = self.robot
        prefix = topic[:-len(INFO_SUFFIX)] if topic.endswith(INFO_SUFFIX) \
            else ''
        self._camera_of[prefix] = record.camera
        if prefix in self._thumbnails:
            early = self._thumbnails[prefix][1]
            record.thumbnail = early.pop(round(record.stamp, 6), None)
        if self._poses is not None and record.frame_id:
            record.pose = self._poses(record.frame_id, record.stamp)
            self.counts['poses' if record.pose else 'poses_missing'] += 1
        self._store(record)

    def _on_thumbnail(self, msg, prefix, early):
        stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
        jpeg = shrink_jpeg(bytes(msg.data),
                           self.params['memory_thumbnail_side'])
        if jpeg is None:
            self.counts['bad_thumbnails'] += 1
            self._warn(('thumb', prefix), f'{prefix}{THUMBNAIL_SUFFIX}: '
                       f"format '{msg.format[:40]}' could not be decoded; "
                       'no thumbnail kept')
            return
        camera = self._camera_of.get(prefix)
        try:
            if camera and self.store.attach_thumbnail(camera, stamp, jpeg,
                                                      self.robot):
                self.counts['thumbnails'] += 1
                return
        except MemoryStoreError as exc:
            self._warn('thumb_write', f'thumbnail not stored: {exc}')
            return
        early[round(stamp, 6)] = jpeg
        while len(early) > EARLY_THUMBNAILS:
            early.popitem(last=False)

    # -- recall --------------------------------------------------------
    def _on_recall(self, msg):
        self.counts['recalls'] += 1
        try:
            query = parse_request(msg.data)
            if query.summarize and not self.params['memory_summary_endpoint']:
                raise MemoryInputError(
                    "recall field 'summarize' needs the parameter "
                    "'memory_summary_endpoint' (a server with a text model)")
            if query.summarize and self._summarizing:
                raise MemoryInputError(
                    'a summary is being made: ask again once it is answered')
            matches = self.store.recall(query)
        except (MemoryInputError, MemoryStoreError) as exc:
            self.counts['bad_recalls'] += 1
            self._warn('recall', f'recall not answered: {exc}')
            self._answer({'error': str(exc), 'request': msg.data[:200]})
            return
        answer = {'request': msg.data[:1000], 'count': len(matches),
                  'matches': [m.as_dict() for m in matches]}
        if not query.summarize:
            self._answer(answer)
            return
        self._summarizing = True        # off the executor: it may take long
        threading.Thread(target=self._summarize, args=(answer, matches),
                         name='memory_summary', daemon=True).start()

    def _summarize(self, answer, matches):
        p = self.params
        try:
            text = summarize(p['memory_summary_endpoint'],
                             p['memory_summary_model'], matches)
            answer['summary'] = safe_text(text, 4000)
            self.counts['summaries'] += 1
        except SummaryError as exc:
            self.counts['summary_failures'] += 1
            self._warn('summary', f'no summary: {exc}')
            answer['summary_error'] = str(exc)
        finally:
            self._summarizing = False
        self._answer(answer)

    def _answer(self, answer):
        self.result_publisher.publish(
            String(data=json.dumps(answer, ensure_ascii=False)))

    def _diagnostics(self):
        values = {'store': describe(self.store), 'robot': self.robot,
                  'rows': self.store.rows, 'pending': len(self.pending),
                  'topics': len(self._info_subscriptions)}
        values.update(sorted(self.counts.items()))
        level, message = OK, f'{self.store.rows} captions stored'
        if self.store.read_only:
            level, message = WARN, 'read-only: captions are not stored'
        elif self.pending:
            level, message = WARN, (f'{len(self.pending)} captions wait: '
                                    'the database refuses them')
        return level, message, values

    def destroy_node(self):
        """Close the store."""
        if self.store is not None:
            self.store.close()
            self.store = None
        return super().destroy_node()


def main(args=None):
    """Entry point of ``ros2 run camera_caption caption_memory``."""
    exit_now(run_node(CaptionMemoryNode, args))


if __name__ == '__main__':
    main()

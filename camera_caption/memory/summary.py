"""
One paragraph of what happened in a time window, from the stored captions.

No ROS import.  The captions of the window, oldest first, go as one chat
message to an OpenAI-compatible server (vLLM, SGLang, ``transformers
serve``) that serves a text model; its answer is the summary.  When most
captions are Japanese, the summary is asked for in Japanese.  Every
exchange is bounded by ``timeout`` (the captioner's own HTTP connection).
"""

import json
import re

from camera_caption.engine.openai_protocol import (BadResponse, caption_of,
                                                   Connection, parse_endpoint,
                                                   RequestFailed, status_line)
from camera_caption.memory.records import iso_time
from camera_caption.utilities.safe_text import safe_text

# Most captions put in one request (the newest, when there are more).
MAX_CAPTIONS = 200
_JAPANESE = re.compile(r'[\u3040-\u30ff\u4e00-\u9fff]')
SYSTEM = ('You are given what a robot camera saw: one caption per line, '
          'with its time and camera. Summarize what happened in one short '
          'paragraph. Say only what the captions support.')
SYSTEM_JA = ('ロボットのカメラが見たことを、時刻とカメラ付きで一行ずつ示します。'
             '起きたことを一段落で簡潔に要約してください。キャプションにないことは'
             '書かないでください。')


class SummaryError(RuntimeError):
    """No summary: the server could not be reached or did not give one."""


def summary_messages(matches):
    """Return the chat messages that ask for the summary of ``matches``."""
    lines = [f'{iso_time(m.stamp)[11:19]} {safe_text(m.camera, 80)}: '
             f'{safe_text(m.caption, 500)}'
             for m in sorted(matches, key=lambda m: m.stamp)[-MAX_CAPTIONS:]]
    japanese = sum(bool(_JAPANESE.search(m.caption)) for m in matches) \
        > len(matches) / 2
    return [{'role': 'system', 'content': SYSTEM_JA if japanese else SYSTEM},
            {'role': 'user', 'content': '\n'.join(lines)}]


def summarize(endpoint, model, matches, timeout=60.0, max_tokens=200):
    """Return the summary of ``matches`` or raise :class:`SummaryError`."""
    if not matches:
        raise SummaryError('no captions in the window to summarize')
    try:
        scheme, host, port, base = parse_endpoint(endpoint)
    except Exception as exc:    # noqa: B902 - ModelLoadError names it
        raise SummaryError(str(exc).replace("'endpoint'",
                                            "'memory_summary_endpoint'"))
    conn = Connection(scheme, host, port, timeout, None,
                      {'Content-Type': 'application/json'})
    try:
        if not model:
            model = _only_model(conn, base, endpoint)
        body = json.dumps({'model': model, 'max_tokens': int(max_tokens),
                           'temperature': 0, 'stream': False,
                           'messages': summary_messages(matches)})
        answer = conn.request('POST', base + '/chat/completions',
                              body.encode('utf-8'))
        if answer.status != 200:
            raise SummaryError(status_line(answer.status, answer.text,
                                           endpoint, {}))
        return caption_of(answer.text)
    except RequestFailed as exc:
        raise SummaryError(f'{endpoint}: {exc}') from None
    except BadResponse as exc:
        raise SummaryError(f'{endpoint}: {exc}') from None
    finally:
        conn.close()


def _only_model(conn, base, endpoint):
    answer = conn.request('GET', base + '/models')
    try:
        ids = [m['id'] for m in json.loads(answer.text)['data']]
    except (ValueError, KeyError, TypeError):
        ids = []
    if len(ids) != 1:
        raise SummaryError(
            f'{endpoint} serves {len(ids)} models: name one in '
            "'memory_summary_model'")
    return ids[0]

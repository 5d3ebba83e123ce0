"""
Where a model's files come from: a directory, the local cache or the hub.

No ROS import.  :func:`resolve_model` turns the ``model`` parameter into
what ``from_pretrained`` should read, and fails fast, in one line, when
that cannot work: a hub id that is neither cached nor reachable is refused
after one short probe (``probe_timeout`` seconds), instead of half a minute
of download retries.  A cached hub id loads from its snapshot directory,
with no network at all.
"""

import os
import urllib.error
import urllib.request


class ModelSourceError(RuntimeError):
    """The model's files cannot be had; the message says what to do."""


def hub_endpoint():
    """Return the Hugging Face endpoint that downloads would use."""
    return (os.environ.get('HF_ENDPOINT') or 'https://huggingface.co').rstrip(
        '/')


def _offline():
    return any(os.environ.get(name, '').strip().lower() in ('1', 'true',
                                                            'yes', 'on')
               for name in ('HF_HUB_OFFLINE', 'TRANSFORMERS_OFFLINE'))


def cached_snapshot(model_id):
    """Return the cached snapshot directory of a hub id, or None."""
    try:
        from huggingface_hub import snapshot_download
        from huggingface_hub.utils import LocalEntryNotFoundError
    except ImportError:  # pragma: no cover - transformers depends on it
        return None
    try:
        path = snapshot_download(model_id, local_files_only=True)
    except (LocalEntryNotFoundError, ValueError, OSError):
        return None
    except Exception:  # noqa: B902 - hub versions raise other kinds
        return None
    return path if os.path.isfile(os.path.join(path, 'config.json')) else None


def reachable(url, timeout):
    """Return '' when ``url`` answers at all within ``timeout`` s, else why."""
    request = urllib.request.Request(url, method='HEAD')
    try:
        with urllib.request.urlopen(request, timeout=timeout):
            return ''
    except urllib.error.HTTPError:
        return ''                 # it answered: the server is there
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, 'reason', exc)
        return f'{type(reason).__name__}: {reason}' if not isinstance(
            reason, str) else reason


def resolve_model(model_id, probe_timeout=3.0):
    """
    Return the directory or hub id that ``from_pretrained`` should load.

    Raises :class:`ModelSourceError` when a hub id is not cached and the
    hub is offline (``HF_HUB_OFFLINE``) or does not answer.
    """
    if os.path.isdir(model_id):
        return model_id
    snapshot = cached_snapshot(model_id)
    if snapshot:
        return snapshot
    advice = ('download it once where there is network (hf download '
              f'{model_id}) and copy the cache, or set model to a local '
              'directory written by save_pretrained()')
    if _offline():
        raise ModelSourceError(
            f"model '{model_id}' is not a local directory nor in the Hugging "
            f'Face cache, and HF_HUB_OFFLINE is set: {advice}.')
    endpoint = hub_endpoint()
    why = reachable(endpoint, probe_timeout)
    if why:
        raise ModelSourceError(
            f"model '{model_id}' is not a local directory nor in the Hugging "
            f'Face cache, and the hub ({endpoint}) cannot be reached ({why}): '
            f'{advice}, or run with HF_HUB_OFFLINE=1 once it is cached.')
    return model_id

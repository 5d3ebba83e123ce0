"""
Run nodes the way every executable of this package does.

Ctrl-C and SIGTERM stop the executor, then worker threads are joined and
nodes destroyed before the context shuts down, so a node exits within a
fraction of a second with status 0 and no traceback, model loading
included: nodes are built on a starter thread, and a signal that comes
while one is still being built (a model loading from a slow disk or
network) ends the process at once.  A start-up error (bad parameter,
missing camera, a model that does not load) is logged in one line and
exits with status 1.
"""

import os
import signal
import sys
import threading

from camera_caption.contract.errors import START_ERRORS
import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor

# How often the spin loop looks at the stop flag (seconds).
_POLL = 0.1
# How long a callback under way may take to finish once stopped (seconds).
_BUSY_WAIT = 0.5


def _init(args):
    try:
        from rclpy.signals import SignalHandlerOptions
    except ImportError:  # pragma: no cover - rclpy older than Humble
        rclpy.init(args=args)
        return
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)


def run_nodes(factories, args=None, stop=None, advice=None):
    """
    Create a node with each of ``factories`` and spin them together.

    ``stop`` (a threading.Event) ends the run when set; SIGINT and SIGTERM
    set it when called from the main thread; once the nodes are down they
    are ignored for the rest of the process (a second Ctrl-C, as a terminal
    and ``ros2 launch`` together send, must not kill a node that is ending
    cleanly); the old handlers come back only when the caller passed its
    own ``stop``.  ``advice(message)`` may
    rewrite a start-up error for the entry point that was used (its option
    syntax).  A start-up error is logged under the failing node's name
    (the factory's ``node_name``).  Returns the exit status.
    """
    embedded = stop is not None
    stop = stop or threading.Event()
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, lambda *_: stop.set())
    _init(args)
    nodes = []
    # Callbacks only convert and hand over (inference, capture and publishing
    # run on our own threads), so one executor thread suffices; rclpy's
    # MultiThreadedExecutor busy-waits on subscriptions whose callbacks are
    # queued but not yet running, starving those very threads.
    executor = SingleThreadedExecutor()
    failure = []
    starting = []      # the factory being called, for the error's name
    status = 0

    def spin():
        try:
            executor.spin()
        except ExternalShutdownException:
            pass
        except BaseException as exc:  # noqa: B902 - reported by main thread
            failure.append(exc)
        finally:
            stop.set()

    # executor.spin() on its own thread: the main thread only waits for a
    # signal (a spin_once(timeout) loop would rebuild the wait set on every
    # call and busy-loop while callbacks are pending).
    spinner = threading.Thread(target=spin, name='executor', daemon=True)
    started = threading.Event()

    def start():
        try:
            for factory in factories:
                if stop.is_set():
                    return
                starting[:] = [factory]
                nodes.append(factory())
                executor.add_node(nodes[-1])
            spinner.start()
        except BaseException as exc:  # noqa: B902 - reported by main thread
            failure.append(exc)
            stop.set()
        finally:
            started.set()

    starter = threading.Thread(target=start, name='starter', daemon=True)
    try:
        starter.start()
        while not stop.wait(_POLL) and rclpy.ok():
            pass
        if not started.wait(0.2 if previous else 30.0):
            # Still building a node (loading a model): nothing can be
            # interrupted there, so leave now rather than when it ends.
            rclpy.logging.get_logger('camera_caption').info(
                'stopped while starting up')
            if previous:           # a program's main thread: just exit
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(0)
        if failure:
            raise failure[0]
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except START_ERRORS as exc:
        name = getattr(starting[0], 'node_name', '') if starting else ''
        rclpy.logging.get_logger(name or 'camera_caption').fatal(
            advice(str(exc)) if advice else str(exc))
        status = 1
    finally:
        executor.shutdown(timeout_sec=_BUSY_WAIT)
        if spinner.is_alive():     # not started when a factory failed
            spinner.join(_BUSY_WAIT)
        if spinner.is_alive() and previous:
            # A callback is still running (a model loading through
            # `ros2 lifecycle set ... configure`, a hub probe): like a
            # node still being built, leave now rather than when it ends.
            rclpy.logging.get_logger('camera_caption').info(
                'stopped while busy')
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(status)
        for node in reversed(nodes):
            node.destroy_node()
        rclpy.try_shutdown()
        for sig, handler in previous.items():
            # A program ignores further signals from here on: Python puts
            # its own handlers back to the default (die) while finalizing,
            # and a Ctrl-C in a terminal reaches a launched node twice (from
            # the terminal and from ros2 launch), which then ended it with
            # -2 instead of 0.  An ignored signal stays ignored.
            signal.signal(sig, handler if embedded else signal.SIG_IGN)
    return status


def run_node(factory, args=None):
    """Run the single node that ``factory()`` makes; return exit status."""
    return run_nodes([factory], args)


def exit_now(status):
    """
    End the program with ``status`` once its nodes are down.

    Everything that matters is done by then (nodes destroyed, rclpy's
    context and its log files shut down); what is left is the interpreter
    tearing down torch and transformers, which takes a second or more and
    would let Ctrl-C take that long.  Python's own logging is flushed.
    """
    import logging
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)

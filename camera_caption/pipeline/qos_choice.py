"""
Choose the image subscription's reliability from what publishers offer.

No ROS import.  With ``reliability: auto`` the captioner subscribes
reliably when every publisher on the topic offers reliable, and best
effort otherwise (a reliable reader does not match a best-effort writer;
a best-effort reader matches both).  With no publisher yet it subscribes
best effort, which matches whichever comes; the node re-reads the graph
once a second and recreates the subscription when the choice changes.

Why not best effort always: across processes a best-effort reader of
images of a megabyte or more loses most of them (one lost fragment loses
the frame), while a reliable reader gets them repaired; with depth 1 the
writer keeps only the newest frame, so reliable never queues.
"""

RELIABLE = 'reliable'
BEST_EFFORT = 'best_effort'
AUTO = 'auto'


def choose_reliability(setting, offered):
    """
    Return the reliability to subscribe with.

    ``setting`` is the ``reliability`` parameter (``auto``, ``reliable`` or
    ``best_effort``); ``offered`` the reliabilities (``reliable`` or
    ``best_effort``) of the publishers now on the topic.
    """
    if setting != AUTO:
        return setting
    offered = list(offered)
    if offered and all(r == RELIABLE for r in offered):
        return RELIABLE
    return BEST_EFFORT


def describe_offered(offered):
    """Say in a few words what the publishers offer."""
    offered = list(offered)
    if not offered:
        return 'no publisher yet'
    counts = {r: offered.count(r) for r in sorted(set(offered))}
    return ', '.join(f'{n} {r}' for r, n in counts.items()) + (
        ' publisher' if len(offered) == 1 else ' publishers')


class ReliabilityChooser:
    """
    Track one topic's choice; report each change once.

    ``update(offered)`` returns the new reliability and a log line when
    the choice differs from the current one (always on the first call),
    else ``None``.
    """

    def __init__(self, topic, setting):
        self.topic = topic
        self.setting = setting
        self.current = None
        self.offered = []

    def update(self, offered):
        """Take the publishers' reliabilities; return (choice, line)/None."""
        self.offered = list(offered)
        choice = choose_reliability(self.setting, self.offered)
        if choice == self.current:
            return None
        first = self.current is None
        self.current = choice
        if self.setting == AUTO:
            why = f'reliability: auto, {describe_offered(self.offered)}'
        else:
            why = f'reliability: {self.setting}'
        line = f'{self.topic}: subscribing {choice} ({why})'
        return choice, line if first else line + '; subscription recreated'


def starvation_warning(topic, frames_per_s, rate_hz, subscribed, offered):
    """
    Say why a topic's frames arrive slower than captions are asked.

    Returns a diagnostics message when QoS is the likely cause, else None:
    frames arrive (more than none) at less than ``rate_hz`` while our
    subscription (``subscribed``) is best effort and a publisher offers
    reliable (``offered``, one reliability per publisher).  Then frames of
    a megabyte or more are most likely lost in transport, and a reliable
    subscription gets every one of them.
    """
    if not 0 < frames_per_s < rate_hz:
        return None
    if subscribed != BEST_EFFORT or RELIABLE not in offered:
        return None
    if BEST_EFFORT in offered:
        fix = ('publish reliably from every publisher on the topic (one '
               'best-effort publisher keeps reliability auto on best_effort)')
    else:
        fix = 'set reliability: auto (or reliable) on the captioner'
    return (f'frames on {topic} arrive at {frames_per_s:.1f}/s, below '
            f'rate_hz {rate_hz:g}, while the subscription is best_effort '
            'and the publisher offers reliable: large best-effort images '
            f'lose fragments across processes; fix: {fix}')

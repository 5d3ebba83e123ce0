"""
Measure the caption memory under load: insert rate, size and recall times.

Phase "hour": 10 cameras x 10 captions/s of simulated image stamps, ``--rows-hour``
captions (360,000 = one hour) from a seeded vocabulary (one in ten Japanese), each
stored through ``store.add`` as the memory node does (one commit each); consecutive
captions of a camera always differ, so every caption is a row.  Reported: captions/s,
database size (file + WAL) and recall times (min, p50, p95, max) of: two words, ``last``
of a phrase, a 10-minute timeline (limit 100, and every row of the window), Japanese
of 3+ characters (trigram index) and of 1-2 (LIKE).  Phase "big": filled to
``--rows-big`` rows in large transactions, the same queries from a second store object
(its own connection) while a thread adds 100 captions/s through ``store.add``.  Every
kind is checked against a brute-force count, also with a query known to match, so no
figure times empty results.  On a shared machine compare the spread, not one figure:

    python -m camera_caption.tools.memory_benchmark --json out.json
    python -m camera_caption.tools.memory_benchmark --url postgresql://...
"""

import argparse
import datetime
import json
import os
import platform
import random
import shutil
import sqlite3
import sys
import tempfile
import threading
import time

from camera_caption.memory.recall_query import MAX_LIMIT, RecallQuery
from camera_caption.memory.records import CaptionRecord

CAMERAS, RATE, WINDOW_S, TARGET_P95_MS = 10, 100, 600.0, 50.0   # RATE: of all cameras
KINDS = ('text', 'last', 'timeline_100', 'timeline_all', 'japanese', 'japanese_short')
COLOURS = 'red,blue,green,yellow,white,black,grey,orange,brown,purple,silver,pink'.split(',')
OBJECTS = ('car,bicycle,forklift,pallet,truck,dog,cat,box,chair,table,backpack,umbrella,'
           'ladder,cart,robot,door,bus,suitcase,bottle,traffic cone,helmet,scooter,drone,'
           'laptop,trolley').split(',')
ACTIONS = ('standing,parked,moving,lying,turning,waiting,stopped,leaning,rolling,left alone,'
           'being carried').split(',')
PLACES = ('parking lot,kitchen,hallway,warehouse,loading dock,street,sidewalk,office,garden,'
          'entrance,corridor,garage,lobby,staircase,workshop,courtyard').split(',')
PREPS = 'in,near,beside,behind,in front of,across'.split(',')
SIZES = 'small,large,old,new,wet,dirty,shiny,broken'.split(',')
PEOPLE = 'a man,a woman,a child,two people,a worker,a person in a {c} jacket'.split(',')
DOING = ('walking,running,sitting,talking,looking at a phone,pushing a {c} {o},'
         'carrying a {s} {o},opening the door').split(',')
TEMPLATES = ('a {c} {o} {a} {p} the {pl}', 'a {s} {c} {o} and a {c2} {o2} {p} the {pl}',
             '{who} {doing} {p} the {pl}', 'the {pl} with a {c} {o} {a} {p} a {o2}',
             'close-up of a {s} {c} {o} on the floor of the {pl}',
             'an empty {pl} with a {c} {o} in the corner',
             '{who} {doing} next to a {s} {c} {o2}',
             'a {c} {o} {a} next to a {c2} {o2} in the {pl}')
JA_COLOURS = '赤い 青い 白い 黒い 緑の 黄色い 灰色の 銀色の'.split()
JA_OBJECTS = '車 自転車 犬 猫 人 トラック バス 箱 椅子 ロボット フォークリフト 台車 段ボール箱 傘'.split()
JA_PLACES = '駐車場 台所 廊下 倉庫 入口 道路 歩道 事務所 庭 階段'.split()
JA_ACTIONS = '止まっている 歩いている 置かれている 走っている 待っている 動いている 倒れている'.split()
JA_TEMPLATES = ('{pl}に{c}{o}が{a}', '{c}{o}と{c2}{o2}が{pl}で{a}', '{pl}の前で{c}{o}が{a}',
                '{pl}の奥に{c}{o}が{a}。手前に{o2}がある')
JA_WORDS = JA_COLOURS + JA_OBJECTS + JA_PLACES + JA_ACTIONS


class Captions:
    """Make seeded captions; each differs from its camera's previous one."""

    def __init__(self, seed):
        self.rng = random.Random(seed)
        self.previous = {}

    def sentence(self):
        """Return one caption (English, or Japanese one time in ten)."""
        r = self.rng
        if r.random() < 0.1:
            return r.choice(JA_TEMPLATES).format(
                c=r.choice(JA_COLOURS), o=r.choice(JA_OBJECTS), c2=r.choice(JA_COLOURS),
                o2=r.choice(JA_OBJECTS), pl=r.choice(JA_PLACES), a=r.choice(JA_ACTIONS))
        words = {'c': r.choice(COLOURS), 'o': r.choice(OBJECTS), 's': r.choice(SIZES)}
        return r.choice(TEMPLATES).format(
            who=r.choice(PEOPLE).format(**words), doing=r.choice(DOING).format(**words),
            c2=r.choice(COLOURS), o2=r.choice(OBJECTS), a=r.choice(ACTIONS),
            p=r.choice(PREPS), pl=r.choice(PLACES), **words)

    def record(self, camera, stamp):
        """Return the :class:`CaptionRecord` of ``camera`` at ``stamp``."""
        text = self.sentence()
        while text == self.previous.get(camera):
            text = self.sentence()
        self.previous[camera] = text
        return CaptionRecord(stamp=stamp, camera=f'/cam{camera}/image_raw', caption=text,
                             frame_id=f'cam{camera}', model='benchmark', latency_s=0.05)


def timeline_limit(kind):
    """Return the limit of a timeline query: 100, or every row of the window."""
    return 100 if kind == 'timeline_100' else MAX_LIMIT


def make_query(kind, rng, start, end):
    """Return a random :class:`RecallQuery` of ``kind`` over [start, end]."""
    if kind == 'text':
        first, second = rng.sample((COLOURS, OBJECTS, ACTIONS, PLACES), 2)
        words = [rng.choice([w for w in rng.choice(group).split() if len(w) >= 3])
                 for group in (first, second)]
        return RecallQuery(text=' '.join(words), limit=20)
    if kind == 'last':
        return RecallQuery(text=f'{rng.choice(COLOURS)} {rng.choice(OBJECTS)}', last=True)
    if kind.startswith('timeline'):
        since = rng.uniform(start, max(start, end - WINDOW_S))
        return RecallQuery(since=since, until=since + WINDOW_S, timeline=True,
                           limit=timeline_limit(kind))
    if kind == 'japanese':
        text = rng.choice([rng.choice(JA_COLOURS) + rng.choice(JA_OBJECTS)]
                          + [w for w in JA_WORDS if len(w) >= 3])
        return RecallQuery(text=text, limit=20)
    return RecallQuery(text=rng.choice([w for w in JA_WORDS if len(w) < 3]), limit=20)


def probe(kind, rng, texts, stamps):
    """Return a query of ``kind`` built from a stored caption (it matches)."""
    japanese = kind.startswith('japanese')
    index = next(i for i in iter(lambda: rng.randrange(len(texts)), None)
                 if (texts[i][0] > '\u3000') == japanese)     # a Japanese one, or not
    text = texts[index]
    if kind.startswith('timeline'):
        return RecallQuery(since=stamps[index] - WINDOW_S / 2, timeline=True,
                           until=stamps[index] + WINDOW_S / 2, limit=timeline_limit(kind))
    if japanese:
        size = 3 if kind == 'japanese' else 2
        at = rng.randrange(len(text) - size + 1)
        return RecallQuery(text=text[at:at + size], limit=MAX_LIMIT)
    words = text.split()
    if kind == 'last':
        at = rng.randrange(len(words) - 1)
        return RecallQuery(text=' '.join(words[at:at + 2]), last=True)
    long_words = [w for w in words if len(w) >= 3]
    return RecallQuery(text=' '.join(rng.sample(long_words, 2)), limit=MAX_LIMIT)


def expected(query, texts, stamps):
    """Return how many matches ``query`` must give (brute force)."""
    if query.text:
        words = [w.lower() for w in query.words()]
        count = sum(1 for t in texts if all(w in t for w in words))
    else:
        count = sum(1 for s in stamps if query.since <= s <= query.until)
    return min(1 if query.last else query.limit, count)


def run_queries(store, count, rng, start, end):
    """Time ``count`` queries of every kind, in turn; return the figures."""
    times, found = {kind: [] for kind in KINDS}, {kind: [] for kind in KINDS}
    for _ in range(count):
        for kind in KINDS:
            query = make_query(kind, rng, start, end)
            began = time.perf_counter()
            found[kind].append(len(store.recall(query)))
            times[kind].append(1000 * (time.perf_counter() - began))
    return {kind: dict(spread(times[kind]), n=count, empty=found[kind].count(0),
                       matches_mean=round(sum(found[kind]) / count, 1)) for kind in KINDS}


def spread(ms):
    """Return min, p50, p95 (nearest rank) and max of ``ms``, rounded."""
    ordered = sorted(ms)
    p50, p95 = (ordered[min(len(ms) - 1, int(share * len(ms)))] for share in (0.5, 0.95))
    return {'min_ms': round(ordered[0], 2), 'p50_ms': round(p50, 2),
            'p95_ms': round(p95, 2), 'max_ms': round(ordered[-1], 2)}


def run_checks(store, rng, texts, stamps, start, end):
    """Compare a known-matching and a random query of every kind with brute force."""
    lowered, checks = [t.lower() for t in texts], []
    for kind in KINDS:
        for known, query in ((True, probe(kind, rng, texts, stamps)),
                             (False, make_query(kind, rng, start, end))):
            got, want = len(store.recall(query)), expected(query, lowered, stamps)
            checks.append({'kind': kind, 'known_match': known, 'text': query.text,
                           'limit': query.limit, 'expected': want, 'got': got,
                           'ok': got == want})
    return checks


def rows_and_mb(store):
    """Return rows (counted by SQL in SQLite) and megabytes (SQLite: file + WAL)."""
    if store.kind != 'sqlite':
        return store.rows, round(store.size_bytes() / 2**20, 1)
    size = sum(os.path.getsize(store.path + extra) for extra in ('', '-wal')
               if os.path.exists(store.path + extra))
    return (store.db.execute('SELECT count(*) FROM captions').fetchone()[0],
            round(size / 2**20, 1))


def open_store(args, path):
    """Open the store under test: SQLite at ``path``, or ``--url``."""
    if args.url:
        from camera_caption.memory.postgres_store import PostgresStore
        return PostgresStore(args.url)
    from camera_caption.memory.sqlite_store import SQLiteStore
    return SQLiteStore(path)


def prefill(store, captions, texts, stamps, start, rows, chunk=50000):
    """Add rows ``len(texts)``..``rows`` (SQLite: executemany in big transactions)."""
    while len(texts) < rows:
        batch = [captions.record(n % CAMERAS, start + n / RATE)
                 for n in range(len(texts), min(rows, len(texts) + chunk))]
        texts += [r.caption for r in batch]
        stamps += [r.stamp for r in batch]
        if store.kind != 'sqlite':
            for record in batch:
                store.add(record)
            continue
        store.db.execute('BEGIN IMMEDIATE')       # the FTS trigger indexes each row
        store.db.executemany(
            'INSERT INTO captions (stamp, last_stamp, camera, robot, frame_id, caption, '
            'model, latency_s, received) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)',
            [(r.stamp, r.stamp, r.camera, r.robot, r.frame_id, r.caption, r.model,
              r.latency_s, time.time()) for r in batch])
        store.db.execute('COMMIT')
        store.rows += len(batch)
    store.forget_last()


class Writer(threading.Thread):
    """Add ``rate`` captions/s through ``store.add`` until stopped."""

    def __init__(self, store, captions, rate):
        super().__init__(daemon=True)
        self.store, self.captions, self.rate = store, captions, rate
        self.stop, self.seconds = threading.Event(), 0.0
        self.added, self.add_ms, self.errors = [], [], []

    def run(self):
        """Add captions at the rate, stamped now, cameras in turn."""
        began, n = time.monotonic(), 0
        while not self.stop.is_set():
            self.stop.wait(max(0.0, began + n / self.rate - time.monotonic()))
            record = self.captions.record(n % CAMERAS, time.time())
            t0 = time.perf_counter()
            try:
                self.store.add(record)
                self.added.append((record.caption, record.stamp))
            except Exception as exc:  # noqa: B902 - counted and reported
                self.errors.append(str(exc))
            self.add_ms.append(1000 * (time.perf_counter() - t0))
            n += 1
        self.seconds = time.monotonic() - began

    def figures(self):
        """Return the writer's rate and its add times."""
        return {'target_per_s': self.rate, 'added': len(self.added),
                'per_s': round(len(self.added) / max(self.seconds, 1e-9), 1),
                'add': spread(self.add_ms), 'errors': len(self.errors),
                'first_error': (self.errors or [''])[0]}


def machine():
    """Return the CPU, cores, versions, load and date of this run."""
    with open('/proc/cpuinfo') as info:
        cpu = [line.split(':', 1)[1].strip() for line in info if line.startswith('model name')]
    return {'cpu': (cpu or [platform.processor()])[0], 'cores': os.cpu_count(),
            'python': sys.version.split()[0], 'sqlite': sqlite3.sqlite_version,
            'platform': platform.platform(), 'load_avg': [round(x, 2) for x in os.getloadavg()],
            'date': datetime.datetime.now().astimezone().isoformat(timespec='seconds')}


def hour_phase(args, store, captions, texts, stamps, start, rng):
    """Add ``--rows-hour`` captions through ``store.add``; time queries."""
    began = time.perf_counter()
    for n in range(args.rows_hour):
        record = captions.record(n % CAMERAS, start + n / RATE)
        store.add(record)
        texts.append(record.caption)
        stamps.append(record.stamp)
    seconds, end = time.perf_counter() - began, start + args.rows_hour / RATE
    rows, mb = rows_and_mb(store)
    return {'captions': args.rows_hour, 'rows': rows, 'db_mb': mb,
            'simulated_s': args.rows_hour / RATE, 'insert_s': round(seconds, 2),
            'insert_per_s': round(args.rows_hour / seconds, 1),
            'queries': run_queries(store, args.queries, rng, start, end),
            'checks': run_checks(store, rng, texts, stamps, start, end)}


def big_phase(args, store, captions, texts, stamps, start, rng):
    """Fill to ``--rows-big`` rows; time queries on a second connection while writing."""
    began, added = time.perf_counter(), max(0, args.rows_big - len(texts))
    prefill(store, captions, texts, stamps, start, args.rows_big)
    prefill_s, end = time.perf_counter() - began, start + len(texts) / RATE
    began = time.perf_counter()
    reader = open_store(args, store.path if store.kind == 'sqlite' else None)
    open_s, rows_before = time.perf_counter() - began, rows_and_mb(reader)[0]
    writer = Writer(store, captions, RATE)
    writer.start()
    time.sleep(0.5)
    try:
        queries = run_queries(reader, args.queries, rng, start, end)
    finally:
        writer.stop.set()
        writer.join()
    texts += [text for text, _ in writer.added]
    stamps += [stamp for _, stamp in writer.added]
    rows, mb = rows_and_mb(store)      # the writer's store counts its own adds
    figures = {'prefilled': added, 'prefill_s': round(prefill_s, 2),
               'prefill_per_s': round(added / prefill_s, 1) if added else None,
               'rows_before_writer': rows_before, 'reader_open_s': round(open_s, 2),
               'writer': writer.figures(), 'rows': rows, 'db_mb': mb, 'queries': queries,
               'checks': run_checks(reader, rng, texts, stamps, start, end),
               'missed_p95_target': [kind for kind in KINDS
                                     if queries[kind]['p95_ms'] > TARGET_P95_MS]}
    reader.close()
    return figures


def print_table(results):
    """Print the figures of both phases as a table."""
    for name in ('hour', 'big'):
        phase = results[name]
        print(f"\n{name}: {phase['rows']:,} rows, {phase['db_mb']} MB (file + WAL)")
        if name == 'hour':
            print(f"  store.add: {phase['insert_per_s']:,.0f} captions/s "
                  f"({phase['captions']:,} in {phase['insert_s']} s, one commit each)")
        else:
            w = phase['writer']
            print(f"  prefill {phase['prefilled']:,} rows in {phase['prefill_s']} s;"
                  f" reader opened in {phase['reader_open_s']} s; writer "
                  f"{w['per_s']}/s (asked {w['target_per_s']}), add p50 {w['add']['p50_ms']} "
                  f"p95 {w['add']['p95_ms']} max {w['add']['max_ms']} ms, {w['errors']} errors")
        print(f"  {'query':<15}{'n':>5}{'min':>9}{'p50':>9}{'p95':>9}{'max':>9}"
              f"{'matches':>9}{'empty':>7}   (ms)")
        for kind, q in phase['queries'].items():
            print(f"  {kind:<15}{q['n']:>5}{q['min_ms']:>9.2f}{q['p50_ms']:>9.2f}"
                  f"{q['p95_ms']:>9.2f}{q['max_ms']:>9.2f}{q['matches_mean']:>9.1f}"
                  f"{q['empty']:>7}")
        bad = [c for c in phase['checks'] if not c['ok']]
        print(f"  checks against brute force: {len(phase['checks']) - len(bad)}"
              f"/{len(phase['checks'])} ok" + ''.join(f'\n    WRONG {c}' for c in bad))
    missed = results['big']['missed_p95_target']
    print(f'\np95 target {TARGET_P95_MS:g} ms while writing: '
          + (f"missed by {', '.join(missed)}" if missed else 'met by every kind'))


def main(argv=None):
    """Command line entry."""
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('--rows-hour', type=int, default=360000,
                        help='captions of the hour phase (10 cameras x 10/s)')
    parser.add_argument('--rows-big', type=int, default=1000000, help='rows of phase big')
    parser.add_argument('--queries', type=int, default=200, help='of each kind per phase')
    parser.add_argument('--path', help='folder of the SQLite file, memory_benchmark.db, '
                        'replaced if there (default: a temporary one, removed after)')
    parser.add_argument('--url', help='postgresql://...: measure PostgresStore instead '
                        '(an empty database)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--json', help='also write every figure here')
    args = parser.parse_args(argv)
    folder = args.path or tempfile.mkdtemp(prefix='memory_benchmark_')
    path = os.path.join(folder, 'memory_benchmark.db')
    if not args.url:
        os.makedirs(folder, exist_ok=True)
        for name in (path, path + '-wal', path + '-shm'):
            if os.path.exists(name):
                os.remove(name)
    began = time.time()
    start = float(int(began - max(args.rows_hour, args.rows_big) / RATE - 60))
    store = open_store(args, path)
    if store.rows:
        raise SystemExit(f'{args.url}: the database has rows already; give an empty one')
    results = {'machine': machine(), 'options': vars(args), 'target_p95_ms': TARGET_P95_MS,
               'store': store.kind, 'cameras': CAMERAS, 'captions_per_s': RATE,
               'first_stamp': start, 'note': 'a shared machine: figures are noisy'}
    captions, rng, texts, stamps = Captions(args.seed), random.Random(args.seed + 1), [], []
    try:
        print(f'hour: {args.rows_hour:,} captions through store.add ...', flush=True)
        results['hour'] = hour_phase(args, store, captions, texts, stamps, start, rng)
        print(f'big: fill to {args.rows_big:,} rows, query while adding {RATE}/s ...',
              flush=True)
        results['big'] = big_phase(args, store, captions, texts, stamps, start, rng)
    finally:
        store.close()
        if not args.path and not args.url:
            shutil.rmtree(folder, ignore_errors=True)
    results['wall_s'] = round(time.time() - began, 1)
    results['machine']['load_avg_end'] = [round(x, 2) for x in os.getloadavg()]
    print_table(results)
    print(f"\n{results['wall_s']} s in all; load average {results['machine']['load_avg']} -> "
          f"{results['machine']['load_avg_end']} (a shared machine: the figures are noisy)")
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, 'w') as out:
            json.dump(results, out, indent=1, ensure_ascii=False)
    return 0 if all(c['ok'] for name in ('hour', 'big') for c in results[name]['checks']) else 1


if __name__ == '__main__':
    sys.exit(main())

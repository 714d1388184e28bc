"""Turns a design, a cohort and a reader list into every assignment, reproducibly from the study seed.

The allocation is a pure function (no database), so its invariants can be checked over many random
designs and seeds. What it guarantees, or refuses to produce:

* each case of an arm is read by exactly ``readers_per_case`` readers of the arm's role; an arm with
  ``same_cases_as`` reads exactly the other arm's cases, one with ``disjoint_from`` none of the named arms';
* with ``distinct_case_per_reader`` a reader never meets the same case twice, in any arm
  (no carry-over from one read of a case to the next);
* reads are balanced: within an arm every reader of the role has the same number of cases, within one;
* in comparisons, the draft standing as A is randomized and balanced at every level: the model is A
  in half of each reader's comparisons (within one), in half of those in the first and in the second
  half of the reader's worklist (within one half), and in half of the study's (within one half, up to
  the parity of the readers' counts); which source gets a reader's odd comparison is random per reader,
  balanced across readers;
* a draft that comes from another arm is bound to one submitted-to-be assignment of that arm for the
  same case, spreading the source readers evenly;
* each reader's worklist is in reading-round order (a round's cases open together, see
  ``StudyDesign``), randomized within each round;
* with ``[sessions]``, each role's crossover arms are read on the same (reader, case) pairs, one arm per
  session, and the order of the arms (the pair's sequence, a row of a Latin square) is balanced within one
  for every reader (so each session holds each modality within one) and for every case (so each case is
  read first in each modality by as many readers, within one); ``distinct_case_per_reader`` then holds
  except for these planned repeats, which the washout separates; the schedule must fit ``study_days``;
* with ``[sites]`` (every reader and case has a site): ``mode = "own"`` keeps each reader to their own site's cases,
  each site allocated as a sub-study with its own readers (the balance above holds within each site);
  ``mode = "crossed"`` with ``balance`` gives every reader of a role each site's cases of an arm within one as
  often as the role's other readers (so each reader reads every site); a site short of readers or cases is
  refused, naming it;
* the same seed and inputs give the same allocation, on any machine (``random.Random`` seeded from a
  string is stable across CPython versions).
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from dataclasses import dataclass, field, replace

from study_app.designs import ArmSpec, StudyDesign
from study_app.designs.design import case_dependencies

# Greedy balancing almost always succeeds at once; a few retries make the rare tight corner pass.
MAX_ATTEMPTS = 200


class AllocationError(ValueError):
    """The design cannot be satisfied with this cohort and these readers; the message says which constraint."""


@dataclass(frozen=True)
class CaseSlot:
    case_key: str
    has_mc_item: bool
    site: str | None = None


@dataclass(frozen=True)
class ReaderSlot:
    reader_key: str
    role: str
    site: str | None = None


@dataclass
class PlannedAssignment:
    index: int
    reader_key: str
    case_key: str
    arm_key: str
    position: int = 0
    # For drafts from another arm: the index of the planned assignment whose report is the draft.
    source_index: int | None = None
    source_b_index: int | None = None
    # For compare: which of the arm's two draft sources stands as A (0 or 1).
    a_source_index: int | None = None
    # The reading session (1 unless the design has [sessions]; then a crossover arm's session is its place in
    # the (reader, case) pair's sequence).
    reading_session: int = 1


@dataclass
class Allocation:
    seed: int
    assignments: list[PlannedAssignment]
    arm_cases: dict[str, list[str]] = field(default_factory=dict)
    # Each arm's readers per case, as allocated ("all" resolved to the role's readers).
    readers_per_case: dict[str, int] = field(default_factory=dict)

    def by_reader(self) -> dict[str, list[PlannedAssignment]]:
        grouped: dict[str, list[PlannedAssignment]] = defaultdict(list)
        for planned in self.assignments:
            grouped[planned.reader_key].append(planned)
        for rows in grouped.values():
            rows.sort(key=lambda p: p.position)
        return dict(grouped)


def seeded_rng(seed: int, *purpose: object) -> random.Random:
    """The random stream of one purpose of a study's seed (stable across machines and CPython versions).

    One independent stream per purpose: adding a reader to one role does not reshuffle another.
    """
    return random.Random(":".join(str(p) for p in (seed, *purpose)))


_rng = seeded_rng


def _crossover_of(design: StudyDesign) -> dict[str, tuple[str, ...]]:
    """arm key -> the crossover arms (its own included) read on the same (reader, case) pairs."""
    if design.sessions is None:
        return {}
    return {key: keys for keys in design.sessions.crossover.values() for key in keys}


def _arm_units(design: StudyDesign) -> list[list[ArmSpec]]:
    """Arms with the arms they depend on first (their draft sources, the arm whose cases they take, the arms they
    must not share a case with), so a dependent arm can draw its cases from theirs; a role's crossover arms form
    one unit (they read the same cases)."""
    crossover = _crossover_of(design)
    units: list[list[ArmSpec]] = []
    seen: set[str] = set()
    for arm in design.arms:
        if arm.key in seen:
            continue
        unit = [design.arm(k) for k in crossover.get(arm.key, (arm.key,))]
        seen.update(a.key for a in unit)
        units.append(unit)
    done: list[list[ArmSpec]] = []
    done_keys: set[str] = set()
    pending = list(units)
    while pending:
        for unit in pending:
            own = {a.key for a in unit}
            needs = {k for a in unit for k in case_dependencies(a)} - own
            if needs <= done_keys:
                done.append(unit)
                done_keys.update(own)
                pending.remove(unit)
                break
        else:  # pragma: no cover - the parser refuses chains, so there is no cycle to meet
            raise AllocationError("arms depend on each other in a cycle")
    return done


def _choose_arm_cases(design: StudyDesign, cases: list[CaseSlot], seed: int) -> dict[str, list[str]]:
    order = [c.case_key for c in cases]
    with_mc = [c.case_key for c in cases if c.has_mc_item]
    chosen: dict[str, list[str]] = {}
    for unit in _arm_units(design):
        # A crossover's arms read the same cases: those eligible for every one of them (the parser made their
        # same_cases_as / disjoint_from / cases agree, so the first arm's say it for all).
        eligible_sets, why = [], "cases in the cohort"
        for arm in unit:
            if arm.task == "rate_reasoning":
                eligible, why = with_mc, "cases with a multiple-choice item"
            else:
                eligible = order
            for source in arm.draft_sources:
                if source.kind == "arm":
                    source_cases = set(chosen[source.arm])
                    eligible = [c for c in eligible if c in source_cases]
                    why = f"cases that arm '{source.arm}' reads"
            eligible_sets.append(set(eligible))
        eligible = [c for c in order if all(c in e for e in eligible_sets)]
        first = unit[0]
        if first.same_cases_as:
            # Fully crossed across arms: exactly the other arm's cases, which must all be eligible here.
            same = chosen[first.same_cases_as]
            outside = [c for c in same if c not in set(eligible)]
            if outside:
                raise AllocationError(
                    f"arm '{first.key}' takes the same cases as arm '{first.same_cases_as}', but {len(outside)} of "
                    f"them (e.g. '{outside[0]}') are not among the {why}"
                )
            for arm in unit:
                chosen[arm.key] = list(same)
            continue
        if first.disjoint_from:
            taken = {c for other in first.disjoint_from for c in chosen[other]}
            eligible = [c for c in eligible if c not in taken]
            why += f" outside arm(s) {', '.join(first.disjoint_from)}"
        wanted = len(eligible) if first.cases is None else first.cases
        if wanted == 0 or len(eligible) < wanted:
            raise AllocationError(
                f"arm '{first.key}' needs {max(wanted, 1)} case(s) but there are only {len(eligible)} {why}"
            )
        picked = set(_rng(seed, "cases", first.key).sample(eligible, wanted))
        for arm in unit:
            chosen[arm.key] = [c for c in order if c in picked]
    return chosen


def _check_capacity(
    design: StudyDesign, arm_cases: dict[str, list[str]], readers_of: dict[str, list[str]], where: str = ""
) -> None:
    """Refuse an arm or role the readers cannot read; ``where`` names the site when it is one site's sub-study."""
    for role in sorted({a.role for a in design.arms}):
        n_readers = len(readers_of.get(role, []))
        # (With sites "own", a site may have no case of an arm: then the site's readers have nothing to read there.)
        role_arms = [a for a in design.arms if a.role == role and arm_cases[a.key]]
        if not role_arms:
            continue
        if n_readers == 0:
            raise AllocationError(
                f"role '{role}' has arms ({', '.join(a.key for a in role_arms)}) but no reader{where}"
            )
        for arm in role_arms:
            if arm.readers_per_case > n_readers:
                raise AllocationError(
                    f"arm '{arm.key}' asks {arm.readers_per_case} readers per case but role '{role}' "
                    f"has only {n_readers} reader(s){where}"
                )
        if not design.distinct_case_per_reader:
            continue
        reads_per_case: Counter[str] = Counter()
        for arm in _placed(design, role_arms):
            for case in arm_cases[arm.key]:
                reads_per_case[case] += arm.readers_per_case
        if not reads_per_case:
            continue
        case, most = max(reads_per_case.items(), key=lambda kv: (kv[1], kv[0]))
        if most > n_readers:
            raise AllocationError(
                f"constraint distinct_case_per_reader cannot hold: case '{case}' needs {most} reads by "
                f"role '{role}' across arms ({', '.join(a.key for a in role_arms)}) but the role has only "
                f"{n_readers} reader(s){where}"
            )


def _placed(design: StudyDesign, role_arms: list[ArmSpec]) -> list[ArmSpec]:
    """The arms whose reads are placed on readers: a crossover stands as its first arm (the others copy its
    (reader, case) pairs), so a crossover's repeats are the only ones distinct_case_per_reader lets through."""
    crossover = _crossover_of(design)
    return [a for a in role_arms if a.key not in crossover or crossover[a.key][0] == a.key]


def _assign_role(
    role_arms: list[ArmSpec],
    arm_cases: dict[str, list[str]],
    readers: list[str],
    distinct: bool,
    rng: random.Random,
    site_of: dict[str, str] | None = None,
) -> list[tuple[str, str, str]] | None:
    """One greedy attempt: (reader, case, arm) triples, or None when some slot had no eligible reader.

    With ``site_of`` (crossed sites, balanced) a read goes first to the readers with the fewest reads of the case's
    site in the arm, then to those with the fewest in the arm: the per-site counts are kept within one, and each
    site's odd reads go to the readers the other sites gave fewer.
    """
    arm_load: dict[tuple[str, str], int] = Counter()
    site_load: dict[tuple[str, str, str], int] = Counter()
    total_load: Counter[str] = Counter()
    seen: dict[str, set[tuple[str, str]]] = defaultdict(set)  # case -> {(reader, arm)}
    slots_by_case: dict[str, list[str]] = defaultdict(list)
    for arm in role_arms:
        for case in arm_cases[arm.key]:
            slots_by_case[case].extend([arm.key] * arm.readers_per_case)
    cases = sorted(slots_by_case)
    rng.shuffle(cases)
    # Cases with the most reads go first: they are the hardest to place without repeats.
    cases.sort(key=lambda c: -len(slots_by_case[c]))
    triples = []
    for case in cases:
        slots = slots_by_case[case]
        rng.shuffle(slots)
        for arm_key in slots:
            taken = seen[case]
            eligible = [
                r for r in readers
                if (r, arm_key) not in taken and not (distinct and any(r == t[0] for t in taken))
            ]
            if not eligible:
                return None
            if site_of is None:
                reader = min(eligible, key=lambda r: (arm_load[(r, arm_key)], total_load[r], rng.random()))
            else:
                site = site_of[case]
                reader = min(eligible, key=lambda r: (
                    site_load[(r, arm_key, site)], arm_load[(r, arm_key)], total_load[r], rng.random()))
                site_load[(reader, arm_key, site)] += 1
            arm_load[(reader, arm_key)] += 1
            total_load[reader] += 1
            taken.add((reader, arm_key))
            triples.append((reader, case, arm_key))
    return triples


def _spread(
    triples: list[tuple[str, str, str]], readers: list[str], role_arms: list[ArmSpec],
    site_of: dict[str, str] | None = None,
) -> int:
    """The largest difference between two readers' cases in an arm (and, with ``site_of``, of one site in an arm)."""
    worst = 0
    for arm in role_arms:
        counts = Counter(r for r, _, a in triples if a == arm.key)
        loads = [counts.get(r, 0) for r in readers]
        worst = max(worst, max(loads) - min(loads))
        if site_of is not None:
            for site in set(site_of.values()):
                counts = Counter(r for r, c, a in triples if a == arm.key and site_of[c] == site)
                loads = [counts.get(r, 0) for r in readers]
                worst = max(worst, max(loads) - min(loads))
    return worst


def allocate(
    design: StudyDesign, cases: list[CaseSlot], readers: list[ReaderSlot], seed: int
) -> Allocation:
    """Generate every assignment of a study.

    Parameters
    ----------
    design : StudyDesign
    cases : list of CaseSlot, in cohort order.
    readers : list of ReaderSlot, in registration order.
    seed : int
        The study seed; the allocation is a deterministic function of it and the inputs.

    Raises
    ------
    AllocationError
        Before anything is produced, naming the constraint that cannot hold.
    """
    case_keys = [c.case_key for c in cases]
    if len(set(case_keys)) != len(case_keys):
        raise AllocationError("the cohort has duplicate case ids")
    reader_keys = [r.reader_key for r in readers]
    if len(set(reader_keys)) != len(reader_keys):
        raise AllocationError("the reader list has duplicate reader ids")
    for reader in readers:
        if reader.role not in design.roles:
            raise AllocationError(
                f"reader '{reader.reader_key}' has role '{reader.role}', which the design does not declare "
                f"({', '.join(design.roles)})"
            )
    readers_of: dict[str, list[str]] = defaultdict(list)
    for reader in readers:
        readers_of[reader.role].append(reader.reader_key)
    _check_schedule(design)
    sites = design.sites
    if sites is not None:
        _check_sites(cases, readers)
    # readers_per_case = "all": the number is the role's readers (a role without any is refused below); with
    # [sites] mode = "own" it is the site's readers of the role, set per site below.
    all_readers_design = design
    design = replace(design, arms=tuple(
        replace(a, readers_per_case=max(1, len(readers_of.get(a.role, [])))) if a.all_readers else a
        for a in design.arms
    ))

    arm_cases = _choose_arm_cases(design, cases, seed)
    crossover = _crossover_of(design)
    triples: list[tuple[str, str, str]] = []
    readers_per_case = {a.key: a.readers_per_case for a in design.arms}
    if sites is not None and sites.mode == "own":
        site_of_case = {c.case_key: c.site for c in cases}
        site_of_reader = {r.reader_key: r.site for r in readers}
        # "all" is per site here: record the largest site's number (what the Launch page shows as the arm's).
        readers_per_case.update({a.key: 0 for a in design.arms if a.all_readers})
        for site in sorted({*site_of_case.values(), *site_of_reader.values()}):
            site_readers = {role: [r for r in keys if site_of_reader[r] == site] for role, keys in readers_of.items()}
            site_cases = {arm: [c for c in keys if site_of_case[c] == site] for arm, keys in arm_cases.items()}
            site_design = replace(all_readers_design, arms=tuple(
                replace(a, readers_per_case=max(1, len(site_readers.get(a.role, [])))) if a.all_readers else a
                for a in all_readers_design.arms
            ))
            _check_own_site(site_design, site, site_cases, site_readers)
            where = f' at site \'{site}\' ([sites] mode = "own": a reader reads only their own site\'s cases)'
            _check_capacity(site_design, site_cases, site_readers, where)
            for arm in site_design.arms:
                if site_cases[arm.key]:
                    readers_per_case[arm.key] = max(readers_per_case[arm.key], arm.readers_per_case)
            for role in site_design.roles:
                triples.extend(_place_role(site_design, role, site_cases, site_readers.get(role, []), seed,
                                           ("readers", role, "site", site), None, where))
    else:
        _check_capacity(design, arm_cases, readers_of)
        site_of = None
        if sites is not None and sites.balance:
            site_of = {c.case_key: c.site for c in cases}
            _check_crossed_sites(design, arm_cases, readers_of, site_of)
        for role in design.roles:
            triples.extend(_place_role(design, role, arm_cases, readers_of.get(role, []), seed,
                                       ("readers", role), site_of, ""))
    # The other arms of a crossover read the pairs its first arm was given.
    triples.extend([(r, c, other) for r, c, a in triples if a in crossover and crossover[a][0] == a
                    for other in crossover[a][1:]])

    arm_index = {a.key: i for i, a in enumerate(design.arms)}
    case_index = {c: i for i, c in enumerate(case_keys)}
    reader_index = {r: i for i, r in enumerate(reader_keys)}
    # A canonical order before any further randomness, so the result does not depend on dict order.
    triples.sort(key=lambda t: (arm_index[t[2]], case_index[t[1]], reader_index[t[0]]))
    planned = [PlannedAssignment(i, r, c, a) for i, (r, c, a) in enumerate(triples)]

    _assign_sessions(design, planned, seed)
    _bind_sources(design, planned, seed)
    _order_worklists(design, planned, seed)
    _balance_ab(design, planned, seed)
    return Allocation(seed=seed, assignments=planned, arm_cases=arm_cases, readers_per_case=readers_per_case)


def _place_role(
    design: StudyDesign, role: str, arm_cases: dict[str, list[str]], readers: list[str], seed: int,
    purpose: tuple, site_of: dict[str, str] | None, where: str,
) -> list[tuple[str, str, str]]:
    """The (reader, case, arm) triples of one role's placed arms: the best-balanced of seeded greedy attempts."""
    role_arms = [a for a in design.arms if a.role == role and arm_cases[a.key]]
    if not role_arms:
        return []
    placed = _placed(design, role_arms)
    best, best_spread = None, None
    for attempt in range(MAX_ATTEMPTS):
        candidate = _assign_role(placed, arm_cases, readers, design.distinct_case_per_reader,
                                 _rng(seed, *purpose, attempt), site_of)
        if candidate is None:
            continue
        spread = _spread(candidate, readers, placed, site_of)
        if best_spread is None or spread < best_spread:
            best, best_spread = candidate, spread
        if spread <= 1:
            break
    if best is None:
        raise AllocationError(
            f"could not place every read of role '{role}' with no reader meeting a case twice{where}; "
            "add readers or lower readers_per_case"
        )
    if best_spread > 1:
        what = " (and of each site)" if site_of is not None else ""
        raise AllocationError(
            f"could not balance the reads of role '{role}' within one case per reader per arm{what}{where}; "
            "add readers, or make the arms' case counts fit the number of readers"
        )
    return best


def _check_sites(cases: list[CaseSlot], readers: list[ReaderSlot]) -> None:
    """A design with [sites] allocates by site: every reader and every case must have one."""
    for reader in readers:
        if reader.site is None:
            raise AllocationError(
                f"[sites]: reader '{reader.reader_key}' has no site; give every reader a site (the readers CSV's "
                "site column)"
            )
    for case in cases:
        if case.site is None:
            raise AllocationError(
                f"[sites]: case '{case.case_key}' has no site; give every case a site (the manifest's site column)"
            )


def _check_own_site(
    design: StudyDesign, site: str, site_cases: dict[str, list[str]], site_readers: dict[str, list[str]]
) -> None:
    """With mode = "own", a site's cases of a role's arm need that site's readers of the role, and its readers cases."""
    for arm in design.arms:
        n_cases, n_readers = len(site_cases[arm.key]), len(site_readers.get(arm.role, []))
        if n_cases and not n_readers:
            raise AllocationError(
                f'[sites] mode = "own": site \'{site}\' is short of readers: arm \'{arm.key}\' reads {n_cases} of its '
                f"case(s) but the site has no reader of role '{arm.role}'; add one, or use mode = \"crossed\""
            )
        if n_readers and not n_cases:
            raise AllocationError(
                f'[sites] mode = "own": site \'{site}\' is short of cases: its {n_readers} reader(s) of role '
                f"'{arm.role}' would read nothing in arm '{arm.key}' (none of its cases is in the arm); add cases of "
                "the site, or use mode = \"crossed\""
            )


def _check_crossed_sites(
    design: StudyDesign, arm_cases: dict[str, list[str]], readers_of: dict[str, list[str]], site_of: dict[str, str]
) -> None:
    """With mode = "crossed" and balance, each arm needs at least one read of every site per reader of its role."""
    for arm in _placed(design, list(design.arms)):
        n_readers = len(readers_of.get(arm.role, []))
        counts = Counter(site_of[c] for c in arm_cases[arm.key])
        for site in sorted(set(site_of.values())):
            reads = counts.get(site, 0) * arm.readers_per_case
            if reads < n_readers:
                raise AllocationError(
                    f'[sites] mode = "crossed" with balance: site \'{site}\' is short of cases: arm \'{arm.key}\' has '
                    f"{counts.get(site, 0)} of its case(s) x {arm.readers_per_case} reader(s) per case = {reads} "
                    f"read(s) for the {n_readers} reader(s) of role '{arm.role}', so not every reader can read the "
                    "site; add cases of the site, or set balance = false"
                )


def _check_schedule(design: StudyDesign) -> None:
    """Refuse a schedule that cannot fit: every session's reading window and a washout between each two."""
    plan = design.sessions
    if plan is None or plan.span_days() <= plan.study_days:
        return
    raise AllocationError(
        f"[sessions] cannot fit the study's dates: {plan.count} sessions of session_days = {plan.session_days} "
        f"with washout_days = {plan.washout_days} between them need {plan.span_days()} days, but study_days = "
        f"{plan.study_days}; lengthen study_days, or shorten session_days or washout_days"
    )


def _assign_sessions(design: StudyDesign, planned: list[PlannedAssignment], seed: int) -> None:
    """Give each crossover read its session: its arm's place in the (reader, case) pair's modality sequence.

    The sequences (``SessionPlan.sequences``) are dealt to the pairs by an equitable colouring of the
    reader-case graph, so every reader and every case has each sequence within one as often as the others.
    """
    plan = design.sessions
    if plan is None:
        return
    sequences = plan.sequences()
    for role, keys in sorted(plan.crossover.items()):
        rows = [p for p in planned if p.arm_key in keys]
        pairs = sorted({(p.reader_key, p.case_key) for p in rows})
        rng = _rng(seed, "sessions", role)
        colour = equitable_colouring(pairs, len(sequences), rng)
        dealt = list(range(len(sequences)))
        rng.shuffle(dealt)  # which colour is which sequence: random, so no sequence is always the first colour's
        modality = {key: i for i, key in enumerate(keys)}
        for p in rows:
            sequence = sequences[dealt[colour[(p.reader_key, p.case_key)]]]
            p.reading_session = sequence.index(modality[p.arm_key]) + 1


def equitable_colouring(edges: list[tuple[str, str]], k: int, rng: random.Random) -> dict[tuple[str, str], int]:
    """Colour the edges of a bipartite graph with ``k`` colours so every vertex has each colour within one as often.

    Such a colouring always exists (de Werra, 1971). Each vertex's edges are cut, in a random order, into
    chunks of at most ``k``; the chunk graph is bipartite with maximum degree ``k``, so it has a proper
    ``k``-edge-colouring (König), found edge by edge by swapping colours along alternating paths. A full
    chunk then carries every colour once and the last chunk distinct colours: each colour occurs
    floor(d / k) or ceil(d / k) times at a vertex of degree d.

    Parameters
    ----------
    edges : list of (left, right) pairs, each at most once.
    k : int
        Number of colours (at least 1).
    rng : random.Random
        Decides the order edges are cut into chunks (so the colouring is random, reproducibly).

    Returns
    -------
    dict
        Edge -> colour in ``range(k)``.
    """
    order = list(edges)
    rng.shuffle(order)
    chunk_of: dict[tuple[str, str], tuple[tuple, tuple]] = {}
    filled: Counter[tuple] = Counter()
    for left, right in order:
        ends = []
        for side, vertex in (("l", left), ("r", right)):
            n = filled[(side, vertex)]
            filled[(side, vertex)] += 1
            ends.append((side, vertex, n // k))
        chunk_of[(left, right)] = (ends[0], ends[1])
    at: dict[tuple, dict[int, tuple]] = defaultdict(dict)  # chunk -> colour -> the other chunk of that edge
    colour: dict[tuple[tuple, tuple], int] = {}

    def free(vertex: tuple) -> int:
        return next(c for c in range(k) if c not in at[vertex])

    for edge in order:
        u, v = chunk_of[edge]
        a, b = free(u), free(v)
        if a in at[v]:
            # Swap a and b along the path from v that alternates a, b, a, ...: it never reaches u (u misses a and
            # would be entered by an a edge), and afterwards a is free at v.
            path, vertex, c = [], v, a
            while c in at[vertex]:
                nxt = at[vertex][c]
                path.append((vertex, nxt, c))
                vertex, c = nxt, (b if c == a else a)
            for x, y, c in path:
                del at[x][c], at[y][c]
            for x, y, c in path:
                swapped = b if c == a else a
                at[x][swapped], at[y][swapped] = y, x
                colour[(x, y) if x[0] == "l" else (y, x)] = swapped
        at[u][a], at[v][a] = v, u
        colour[(u, v)] = a
    return {edge: colour[chunk_of[edge]] for edge in edges}


def _bind_sources(design: StudyDesign, planned: list[PlannedAssignment], seed: int) -> None:
    by_arm_case: dict[tuple[str, str], list[PlannedAssignment]] = defaultdict(list)
    for p in planned:
        by_arm_case[(p.arm_key, p.case_key)].append(p)
    used: Counter[int] = Counter()
    authored: Counter[tuple[str, str]] = Counter()
    for arm in design.arms:
        rng = _rng(seed, "sources", arm.key)
        for slot, source in enumerate(arm.draft_sources):
            if source.kind != "arm":
                continue
            for p in [q for q in planned if q.arm_key == arm.key]:
                candidates = [s for s in by_arm_case[(source.arm, p.case_key)] if s.reader_key != p.reader_key]
                if not candidates:
                    # Possible only without distinct_case_per_reader: never show readers their own report.
                    raise AllocationError(
                        f"arm '{arm.key}' cannot give reader '{p.reader_key}' a report of arm '{source.arm}' for "
                        f"case '{p.case_key}' written by someone else; add readers to role '{arm.role}'"
                    )
                # Spread across source reports of the case, then across source readers for this reader.
                # Earliest sessions first: a report written after a washout would hold the round that shows it.
                chosen = min(
                    candidates,
                    key=lambda s: (s.reading_session, used[s.index], authored[(p.reader_key, s.reader_key)], rng.random()),
                )
                used[chosen.index] += 1
                authored[(p.reader_key, chosen.reader_key)] += 1
                if slot == 0:
                    p.source_index = chosen.index
                else:
                    p.source_b_index = chosen.index


def _balance_ab(design: StudyDesign, planned: list[PlannedAssignment], seed: int) -> None:
    """Decide, for every comparison, whether the model's draft or the reader's stands as Report A.

    For each reader and compare arm, the comparisons are split by worklist half (positions up to half the
    reader's worklist, and the rest); within each half the model is A in half of them, placed at random.
    A half with an odd count leaves one comparison over; two left over (one per half) get one source
    each, at random. What is still left over ("extras", at most one per reader and arm) alternates between
    the sources within the reader, and a reader's last odd extra alternates across readers (in a random
    order, starting with a random source). So the model is A in half of each reader's comparisons per arm
    and in all (within one), in half of each worklist half (within one), and in half of the study's
    (within one). A fixed rule such as "the odd one goes to the first source" gave the model two A's in
    three for every reader with an odd count.
    """
    compare_arms = {a.key: a for a in design.arms if a.task == "compare"}
    if not compare_arms:
        return
    groups: dict[tuple[str, str], list[PlannedAssignment]] = defaultdict(list)
    worklist_length: Counter[str] = Counter()
    for p in planned:
        worklist_length[p.reader_key] += 1
        if p.arm_key in compare_arms:
            groups[(p.reader_key, p.arm_key)].append(p)

    def set_model_a(p: PlannedAssignment, model_is_a: bool) -> None:
        model_index = [s.origin for s in compare_arms[p.arm_key].draft_sources].index("model")
        p.a_source_index = model_index if model_is_a else 1 - model_index

    def alternate(rows: list[PlannedAssignment], rng: random.Random) -> PlannedAssignment | None:
        """Shuffle, then model/reader/model/... from a random start; returns the odd one out, unset."""
        rng.shuffle(rows)
        start = rng.random() < 0.5
        even = len(rows) - len(rows) % 2
        for i, p in enumerate(rows[:even]):
            set_model_a(p, start if i % 2 == 0 else not start)
        return rows[even] if len(rows) % 2 else None

    reader_extras: dict[str, list[PlannedAssignment]] = defaultdict(list)
    for reader_key, arm_key in sorted(groups):
        rng = _rng(seed, "ab", arm_key, reader_key)
        rows = sorted(groups[(reader_key, arm_key)], key=lambda p: p.position)
        middle = worklist_length[reader_key] / 2
        left_over = []
        for half in ([p for p in rows if p.position <= middle], [p for p in rows if p.position > middle]):
            odd = alternate(half, rng)
            if odd is not None:
                left_over.append(odd)
        odd = alternate(left_over, rng)
        if odd is not None:
            reader_extras[reader_key].append(odd)
    study_extras = []
    for reader_key in sorted(reader_extras):
        odd = alternate(reader_extras[reader_key], _rng(seed, "ab-extras", reader_key))
        if odd is not None:
            study_extras.append(odd)
    odd = alternate(study_extras, _rng(seed, "ab-extras"))
    if odd is not None:
        set_model_a(odd, _rng(seed, "ab-last").random() < 0.5)


def _order_worklists(design: StudyDesign, planned: list[PlannedAssignment], seed: int) -> None:
    arm_index = {a.key: i for i, a in enumerate(design.arms)}
    reading_round = {a.key: a.reading_round for a in design.arms}
    by_reader: dict[str, list[PlannedAssignment]] = defaultdict(list)
    for p in planned:
        by_reader[p.reader_key].append(p)
    for reader_key in sorted(by_reader):
        rows = by_reader[reader_key]
        rng = _rng(seed, "order", reader_key)
        rng.shuffle(rows)
        # Stable sorts: random within a round (and, for blocked worklists, within an arm of a round). Sessions,
        # then rounds first, so the cases a reader can open now are the first ones of their list; a round holds every
        # arm of one task, so the order says nothing of a draft's source.
        if design.worklist_order == "blocked":
            rows.sort(key=lambda p: arm_index[p.arm_key])
        rows.sort(key=lambda p: (p.reading_session, reading_round[p.arm_key]))
        for position, p in enumerate(rows, 1):
            p.position = position

/*
 * recovery.pml -- Promela model of SPIKE Nexus root-key recovery
 * (Spec/recovery.md, steps 1-12 and R; Spec/recovery-machine.json is the table).
 *
 * One Nexus runs one machine for every way a root key gets installed.  Its
 * shards come from two sources kept apart: the keepers (rounds of requests)
 * and an operator restore (the /v1/operator/restore route while recovery
 * runs, or `nexus --restore FILE...` with no keeper source at all).  The
 * world: keepers that are dead, slow, restarted (empty), hold a shard of an
 * older root key, or correct a stale shard between rounds; bounded network
 * faults and malformed answers; a backing store with records or without
 * (empty), which may be unreadable (locked) for a while; a writer of the
 * holder outside this machine; a Nexus that may crash while it distributes.
 *
 * Abstraction: a key is named by its generation (CUR = the key the store's
 * records are encrypted under, STALE = one older key); a shard is (id,
 * generation).  T shards of one generation rebuild that generation's key;
 * T shards of mixed generations rebuild a key of nobody (GARB), whose
 * polynomial agrees with its own members only.  With records, a key opens
 * the store exactly when it is CUR.  An empty store judges no key: only all
 * K shards of one source lying on the candidate's polynomial confirm it.
 * A missing store is one of the rejected configurations of step 3 unless
 * --allow-empty-store is given, and then it behaves as EMPTY.
 *
 * Every recovery transition is written TR(from, E_event, to) with the
 * state and event names of Spec/recovery-machine.json;
 * tools/check-spec-table compares the two.  TRs sit in atomic blocks, never
 * in d_step (spin reports no unreached statement inside a d_step).
 *
 * Switches (cpp -D):
 *   CONF_4_2             4 keepers, threshold 2 (default: 3 keepers, threshold 2)
 *   LIVENESS             no deadline, valid configuration, intact rows, no
 *                        restore files (the hypothesis of the progress property);
 *                        with CONF_4_2 also no restore (3 keepers check it)
 *   NO_RUNTIME_ASSERTS   drop the assertions the code itself checks, so that
 *                        only the properties (monitor, LTL) can catch a bug
 *   BUG_NO_VERIFY        accept any candidate as opening a store with records
 *                        (Go's behaviour: no check before install)
 *   BUG_NO_STANDDOWN     no stand-down anywhere; step 8 overwrites the holder
 *   BUG_NO_CAS           stand-down at the top of each round only; step 8 is a
 *                        plain store instead of compare-and-set
 *   BUG_DISTRIBUTE_BEFORE_WIPE  start distribution, then wipe the shards
 *   BUG_COUNT_DUPLICATES ask every keeper every round and count every 200
 *                        toward the threshold, duplicates included
 *   BUG_NO_RETRY         only the first round sends requests (a liveness bug)
 *   BUG_KEEP_TRIED_SHARDS  round_exhausted keeps the shards of tried subsets
 *                        (the old rule: a corrected keeper is never asked again)
 *   BUG_ACCEPT_UNVERIFIABLE  an empty store accepts the first T shards (the old
 *                        rule: the key is installed and distributed unconfirmed)
 */

#ifdef CONF_4_2
#define K 4
#else
#define K 3
#endif
#define T 2
#define NSUB (1 << K)          /* id subsets, as bitmasks */
#define ALL  (NSUB - 1)

/* budgets of the unreliable world (per run) */
#define NET_FAULTS      1      /* a live keeper unreachable / too slow / TLS refused, or garbage */
#define KEEPER_RESTARTS 1      /* a keeper restarts and loses its shard */
#define KEEPER_FIXES    1      /* a stale keeper gets the current shard between rounds */
#define NEXUS_RESTARTS  1      /* Nexus crashes while distributing */
#define RESTORE_REPEATS 1      /* the operator sends an id twice */

/* key and shard generations */
#define NONE  0                /* zeroed buffer / no shard / no key */
#define CUR   1
#define STALE 2
#define GARB  3                /* key of nobody; shards of it only in bug runs */
#define MIXED 4                /* polynomial of a mixed set (never stored) */

/* shard sources: index into sh[] is src * K + id - 1 */
#define KEEPERS 0
#define RESTORE 1

/* what the store holds */
#define RECORDS 0              /* at least one probe record */
#define EMPTY   1              /* schema, no encrypted row */
#define UNKNOWN 2              /* not looked at yet */

/* is the store readable? */
#define LOCK_NO    0           /* readable */
#define LOCK_MAYBE 1           /* not looked at: the first 7.2 check may find it locked */
#define LOCK_YES   2           /* locked (another process); readable at the next retry */

/* step 7.2 verdicts */
#define V_OPENS      0
#define V_FAILS      1
#define V_CONFIRMED  2
#define V_UNVERIF    3
#define V_UNREADABLE 4

#define BY_NOBODY   0
#define BY_RECOVERY 1
#define BY_OUTSIDE  2

mtype = { start, recovering, configured, collecting, waitingForRetry,
          thresholdMet, reconstructed, waitingForStore, verified,
          keyInstalled, stateInitialized, shardsWiped, distributing,
          operational, stoodDown, failed };

mtype = { E_none, E_recovery_begun, E_keepers_configured,
          E_configuration_rejected, E_round_started, E_stand_down,
          E_shard_received, E_no_shard, E_shard_rejected,
          E_keeper_unreachable, E_round_exhausted, E_threshold_met,
          E_key_reconstructed, E_bad_shards_excluded, E_subset_tried,
          E_key_verification_failed, E_key_verified, E_key_confirmed,
          E_key_unverifiable, E_store_unreadable, E_store_retry,
          E_shard_disagrees, E_root_key_set, E_state_initialized,
          E_state_initialization_failed, E_late_answer, E_shards_wiped,
          E_distribution_started, E_operational, E_deadline_exceeded,
          E_restore_shard_received, E_restore_threshold_met,
          E_restore_failed };

#define TR(f, e, t)  assert(rstate == f); rstate = t; lastev = e

#ifdef NO_RUNTIME_ASSERTS
#define RT_ASSERT(x) skip
#else
#define RT_ASSERT(x) assert(x)
#endif

/* ---- the world ---- */
mtype rstate = start;          /* the recovery's state (table state names) */
hidden mtype lastev = E_none;  /* the last transition's event (for trails) */

byte kshard[K];                /* what keeper i holds */
bit  kdead[K];                 /* keeper i is down for good */

byte holder = NONE;            /* Nexus's root-key holder */
byte installer = BY_NOBODY;
bit  ext_installed;            /* this incarnation: the holder was written outside the machine */
bit  holder_proven;            /* ghost: the holder's key passed a real 7.2 check */
bit  wrote_unproven;           /* ghost: a keeper was overwritten with an unproven key */

/* Both are chosen when the machine first looks (7.1, 7.2), which is the same
   as choosing them at the start since the machine reads neither before; the
   states before the first look are then shared by every choice.  L1's
   hypothesis treats a store not looked at like one with records. */
byte store_kind = UNKNOWN;
byte lockst = LOCK_MAYBE;

bit  files_mode;               /* nexus --restore FILE...: no keeper source */
byte rgen = NONE;              /* generation of the operator's shards; NONE: no restore */
byte rs_left;                  /* restore ids the operator has not sent yet */
byte rrepeats = RESTORE_REPEATS;

/* ---- recovery memory (all of it is lost when Nexus restarts) ---- */
byte sh[2 * K];                /* shard buffers: keepers, then restore; NONE = zeroed */
byte ncoll;                    /* keeper answers counted toward the threshold */
short tried[2];                /* per source, bit m set: T-subset m tried */
byte pending;                  /* keepers whose answer is outstanding (the inbox) */
bit  src;                      /* the source whose threshold was met */
byte cand = NONE;              /* candidate key buffer */
byte cand_mask;                /* ids the candidate was rebuilt from */
bit  cand_src;
bit  cand_good;                /* ghost: rebuilt from T distinct CUR shards */
bit  cand_proven;              /* ghost: really opens the store / really confirmed */
bit  bad_install;              /* ghost: recovery installed a key without both (kept
                                   across a Nexus restart, like a keeper's damage) */
bit  short_thr;                /* ghost: a threshold was taken with fewer than T distinct ids */

/* ---- fault budgets and one-time choices ---- */
byte net_faults = NET_FAULTS;
byte krestarts = KEEPER_RESTARTS;
byte kfixes = KEEPER_FIXES;
byte nrestarts = NEXUS_RESTARTS;
bit  deadline_on;              /* a deadline may pass (safety runs: at any moment) */

/* ---- derived expressions (for the monitor and the LTL formulas) ---- */
#ifdef CONF_4_2
#define HELDS(o) ((sh[o] != NONE) + (sh[o + 1] != NONE) + (sh[o + 2] != NONE) + (sh[o + 3] != NONE))
#define NCUR  ((kshard[0] == CUR && !kdead[0]) + (kshard[1] == CUR && !kdead[1]) + \
               (kshard[2] == CUR && !kdead[2]) + (kshard[3] == CUR && !kdead[3]))
#define NEEDS_DIST ((!kdead[0] && kshard[0] != holder) || (!kdead[1] && kshard[1] != holder) || \
                    (!kdead[2] && kshard[2] != holder) || (!kdead[3] && kshard[3] != holder))
#define HAS_STALE ((!kdead[0] && kshard[0] == STALE) || (!kdead[1] && kshard[1] == STALE) || \
                   (!kdead[2] && kshard[2] == STALE) || (!kdead[3] && kshard[3] == STALE))
#else
#define HELDS(o) ((sh[o] != NONE) + (sh[o + 1] != NONE) + (sh[o + 2] != NONE))
#define NCUR  ((kshard[0] == CUR && !kdead[0]) + (kshard[1] == CUR && !kdead[1]) + \
               (kshard[2] == CUR && !kdead[2]))
#define NEEDS_DIST ((!kdead[0] && kshard[0] != holder) || (!kdead[1] && kshard[1] != holder) || \
                    (!kdead[2] && kshard[2] != holder))
#define HAS_STALE ((!kdead[0] && kshard[0] == STALE) || (!kdead[1] && kshard[1] == STALE) || \
                   (!kdead[2] && kshard[2] == STALE))
#endif
#define HELD  HELDS(0)
#define RHELD HELDS(K)
#define WIPED (HELD == 0 && RHELD == 0 && cand == NONE)

/* ---- the safety properties ---- */
/* S1: with records in the store, recovery installs a key only if it was
 *     rebuilt from T distinct shards of the current key and opens the store */
#define S1 (!bad_install)
/* S2: with records in the store, no key but the current one is installed */
#define S2 (store_kind != RECORDS || holder == NONE || holder == CUR)
/* S3: after the holder was written outside the machine, recovery never
 *     writes it */
#define S3 (!ext_installed || installer == BY_OUTSIDE)
/* S4: every shard buffer and the candidate are wiped before distribution
 *     starts (and on stand-down, when the other writer distributes) */
#define S4 (!(rstate == distributing || rstate == operational || rstate == stoodDown) || WIPED)
/* S5: the threshold is met only with T distinct share ids of one source */
#define S5 (!short_thr)
/* S6: no keeper is overwritten with shards of a key that was neither
 *     verified (opened the store) nor confirmed (all K shards agree) */
#define S6 (!wrote_unproven)

#define NOTE_INSTALL \
  if :: store_kind == RECORDS && !(cand_good && cand_proven) -> bad_install = 1 :: else fi

/* ---- the liveness properties (checked with weak fairness, -DLIVENESS) ---- */
#define enough ((store_kind != EMPTY && NCUR >= T) || (store_kind == EMPTY && NCUR == K))
#define done   (rstate == operational || rstate == stoodDown)
/* L1: if from some point on the keepers can prove a key (T live current
 *     shards with records; all K with an empty store), Nexus ends up
 *     operational (or stood down after an outside install) and stays so */
ltl progress { (<>[] enough) -> (<>[] done) }
/* L2: after the holder was written outside the machine, recovery stands down */
ltl stands_down { [] (ext_installed -> <> (rstate == stoodDown)) }

/* ---- helpers (deterministic; used inside d_step or atomic) ---- */
#define POP(x) (((x) & 1) + (((x) >> 1) & 1) + (((x) >> 2) & 1) + (((x) >> 3) & 1))

inline held_mask(o, h) {
  h = 0; j = 0;
  do
  :: j < K -> if :: sh[o + j] != NONE -> h = h | (1 << j) :: else fi; j++
  :: else -> break
  od;
  j = 0
}

/* the polynomial fixed by the shards in x: their common generation, or MIXED */
inline poly_of(o, x, p) {
  p = NONE; j = 0;
  do
  :: j < K ->
     if
     :: (x >> j) & 1 ->
        if
        :: p == NONE -> p = sh[o + j]
        :: p != NONE && p != sh[o + j] -> p = MIXED
        :: else
        fi
     :: else
     fi; j++
  :: else -> break
  od;
  j = 0
}

#define KEYOF(p) (p == MIXED -> GARB : p)
/* does held shard i lie on polynomial p (fixed by x)? */
#define AGREES(o, i, p, x) ((p == MIXED && ((x >> i) & 1)) || (p != MIXED && sh[o + i] == p))

inline agreement(o, x, p, h, a) {
  a = 0; j = 0;
  do
  :: j < K -> if :: ((h >> j) & 1) && AGREES(o, j, p, x) -> a++ :: else fi; j++
  :: else -> break
  od;
  j = 0
}

/* smallest (canonical order) untried T-subset of h in source s, or NSUB */
inline first_untried(s, h, m) {
  m = 0;
  do
  :: m < NSUB && POP(m) == T && (m & h) == m && ((tried[s] >> m) & 1) == 0 -> break
  :: m < NSUB && !(POP(m) == T && (m & h) == m && ((tried[s] >> m) & 1) == 0) -> m++
  :: else -> break
  od
}

/* the store's real answer for a key (independent of the machine's code) */
#define TRULY_OPENS(k) (store_kind == RECORDS && k == CUR)
/* the step 7.2 check as the machine runs it */
#ifdef BUG_NO_VERIFY
#define OPENS_STORE(k) 1
#else
#define OPENS_STORE(k) TRULY_OPENS(k)
#endif

inline wipe_restore() {
  j = 0;
  do
  :: j < K -> sh[K + j] = NONE; j++
  :: else -> break
  od;
  j = 0; tried[RESTORE] = 0
}

inline wipe_all() {
  j = 0;
  do
  :: j < 2 * K -> sh[j] = NONE; j++
  :: else -> break
  od;
  j = 0; ncoll = 0; cand = NONE; cand_mask = 0; cand_src = 0; cand_good = 0;
  cand_proven = 0; tried[0] = 0; tried[1] = 0; pending = 0; src = 0
}

/* the operator's next shard: ids in ascending order; a repeated id (another
   value) changes nothing, the first value wins (not in a d_step: the
   choice between the two is real) */
inline restore_arrive() {
  if
  :: rs_left != 0 ->
     i = 0;
     do
     :: ((rs_left >> i) & 1) == 0 -> i++
     :: else -> break
     od;
     rs_left = rs_left & ~(1 << i);
     RT_ASSERT(sh[K + i] == NONE && rgen != NONE);     /* AR.1 */
     sh[K + i] = rgen
  :: rrepeats > 0 && RHELD > 0 -> rrepeats--       /* AR.2: unchanged */
  fi;
  i = 0
}
#define RESTORE_MAY_ARRIVE (!files_mode && (rs_left != 0 || (rrepeats > 0 && RHELD > 0)))

/* does source s hold an untried T-subset? */
inline untried(s) {
  held_mask(s * K, h); first_untried(s, h, m); ok = (m != NSUB); h = 0; m = 0
}

/* ghost for S5: the threshold is taken with T distinct ids of the source */
inline note_threshold() {
  if :: HELDS(src * K) < T -> short_thr = 1 :: else fi
}

/* where the machine waits next (each wait is a point where the world moves) */
#define DISPATCH \
  if \
  :: rstate == configured -> goto configured_wait \
  :: rstate == collecting -> goto collect \
  :: rstate == waitingForRetry -> goto waiting \
  :: rstate == waitingForStore -> goto store_wait \
  :: rstate == verified -> goto install \
  :: rstate == stoodDown -> goto stood_down \
  :: rstate == failed -> goto the_end \
  fi

/* ---- Nexus: one serialized loop; every event is one atomic step, and
   the pure computations inside are d_steps ---- */
proctype nexus() {
  byte i, j, j2, m, c, h, n, p, a, best, v, u;
  bit ok, okr;
  bit passed;                  /* this candidate took key_verified or key_confirmed */
#ifdef BUG_NO_RETRY
  bit asked;
#endif

incarnation:
  atomic {
    /* step 1: a fresh process, no root key */
    rstate = start; lastev = E_none; passed = 0;
#ifdef BUG_NO_RETRY
    asked = 0;
#endif
    RT_ASSERT(holder == NONE && WIPED);
    /* step 2 */
    TR(start, E_recovery_begun, recovering);
    /* step 3 (a missing store without --allow-empty-store is one of the
       rejected configurations) */
    if
    :: TR(recovering, E_keepers_configured, configured)
#ifndef LIVENESS
    :: TR(recovering, E_configuration_rejected, failed)
#endif
    fi;
    if
    :: rstate == configured && files_mode ->
       /* restore files: all of them are read before step 6 is considered */
       do
       :: rs_left != 0 -> d_step { restore_arrive() };
          TR(configured, E_restore_shard_received, configured)
       :: else -> break
       od;
       skip;
       d_step { untried(RESTORE) };
       RT_ASSERT(ok);
       ok = 0; src = RESTORE; note_threshold();
       TR(configured, E_restore_threshold_met, thresholdMet);
       goto threshold
    :: else
    fi
  };
  DISPATCH;

configured_wait:
  /* the restore route may feed shards before the first round */
  if
  :: atomic { RESTORE_MAY_ARRIVE -> restore_arrive();
       TR(configured, E_restore_shard_received, configured);
       d_step { untried(RESTORE) };
       if
       :: ok -> ok = 0; src = RESTORE; note_threshold();
          TR(configured, E_restore_threshold_met, thresholdMet);
          goto threshold
       :: else
       fi }
  :: atomic { TR(configured, E_round_started, collecting); goto round_top }
  fi;
  DISPATCH;

round_top:
  atomic {
    /* step 4.0: the stand-down check at the top of every round */
    if
#ifndef BUG_NO_STANDDOWN
    :: holder != NONE -> d_step { wipe_all() }; TR(collecting, E_stand_down, stoodDown)
#endif
    :: else ->
       /* step 4.1-4.3: ask every keeper whose shard is not held, all at once */
       d_step {
         held_mask(0, h);
#if defined(BUG_COUNT_DUPLICATES)
         pending = ALL;
#elif defined(BUG_NO_RETRY)
         pending = (asked -> 0 : ALL & ~h); asked = 1;
#else
         pending = ALL & ~h;
#endif
         h = 0
       };
       goto settle
    fi
  };
  DISPATCH;

collect:
  /* step 4.4 (and R): one event at a time */
  if
  :: atomic { pending != 0 ->
       /* one outstanding answer arrives -- any of them: the requests run
          concurrently and each has its own deadline */
       if
       :: (pending & 1) -> i = 0
       :: (pending & 2) -> i = 1
       :: (pending & 4) -> i = 2
#ifdef CONF_4_2
       :: (pending & 8) -> i = 3
#endif
       fi;
       pending = pending & ~(1 << i);
       if
       :: kdead[i] -> TR(collecting, E_keeper_unreachable, collecting)
       :: !kdead[i] && net_faults > 0 ->
          /* one fault of the network or of the keeper's answer */
          net_faults--;
          if
          :: TR(collecting, E_keeper_unreachable, collecting)
          :: TR(collecting, E_shard_rejected, collecting)
          fi
       :: !kdead[i] && kshard[i] == NONE -> TR(collecting, E_no_shard, collecting)
       :: !kdead[i] && kshard[i] != NONE ->
          if
          :: sh[i] == NONE -> sh[i] = kshard[i]; ncoll++
          :: else -> ncoll++       /* only reachable with BUG_COUNT_DUPLICATES */
          fi;
          RT_ASSERT(sh[i] != NONE && ncoll == HELD && (tried[KEEPERS] != 0 || HELD <= T));
          TR(collecting, E_shard_received, collecting)
       fi;
       i = 0;
       goto settle }
  :: atomic { pending != 0 && RESTORE_MAY_ARRIVE ->
       restore_arrive();
       TR(collecting, E_restore_shard_received, collecting);
       goto settle }
  :: atomic { deadline_on -> d_step { wipe_all() }; TR(collecting, E_deadline_exceeded, failed) }
  fi;
  DISPATCH;

settle:
  /* after every event in collecting: step 6 at once (keepers first), or,
     in files mode, restore_failed, or, with nothing outstanding, step 5 */
  atomic {
    skip;                      /* a goto may not land on a d_step */
    d_step {
      untried(KEEPERS);
#ifdef BUG_COUNT_DUPLICATES
      ok = ok || (ncoll >= T && tried[KEEPERS] == 0);
#endif
      okr = 0;
      if :: !ok -> untried(RESTORE); okr = ok; ok = 0 :: else fi
    };
    if
    :: ok -> ok = 0; src = KEEPERS; note_threshold();
       TR(collecting, E_threshold_met, thresholdMet);
       goto threshold
    :: okr -> okr = 0; src = RESTORE; note_threshold();
       TR(collecting, E_restore_threshold_met, thresholdMet);
       goto threshold
    :: !ok && !okr && files_mode ->
       /* the files' key was neither verified nor confirmed */
       d_step { wipe_all() }; TR(collecting, E_restore_failed, failed)
    :: !ok && !okr && !files_mode && pending == 0 ->
       d_step {
#ifndef BUG_KEEP_TRIED_SHARDS
         /* every shard of a tried subset is wiped; its keeper is asked again */
         u = 0; m = 0;
         do
         :: m < NSUB -> if :: (tried[KEEPERS] >> m) & 1 -> u = u | m :: else fi; m++
         :: else -> break
         od;
         j2 = 0;
         do
         :: j2 < K -> if :: (u >> j2) & 1 -> sh[j2] = NONE; ncoll-- :: else fi; j2++
         :: else -> break
         od;
         tried[KEEPERS] = 0;
         RT_ASSERT(ncoll == HELD);                     /* A5.3 */
         u = 0; m = 0; j2 = 0
#else
         skip
#endif
       };
       TR(collecting, E_round_exhausted, waitingForRetry)
    :: else
    fi
  };
  DISPATCH;

waiting:
  /* step 5: back off, then a new round */
  if
#ifndef BUG_NO_STANDDOWN
  :: atomic { holder != NONE -> d_step { wipe_all() };
       TR(waitingForRetry, E_stand_down, stoodDown) }
#endif
  :: atomic { deadline_on -> d_step { wipe_all() };
       TR(waitingForRetry, E_deadline_exceeded, failed) }
  :: atomic { TR(waitingForRetry, E_round_started, collecting);
       kfixes = 0;             /* a keeper is corrected during the first wait only */
       goto round_top }
  :: atomic { RESTORE_MAY_ARRIVE -> restore_arrive();
       TR(waitingForRetry, E_restore_shard_received, waitingForRetry);
       d_step { untried(RESTORE) };
       if
       :: ok -> ok = 0; src = RESTORE; note_threshold();
          TR(waitingForRetry, E_restore_threshold_met, thresholdMet);
          goto threshold
       :: else
       fi }
  fi;
  DISPATCH;

store_wait:
  /* step 7.2: the candidate waits for the store; keeper answers wait in
     the inbox, restore shards are kept */
  if
#ifndef BUG_NO_STANDDOWN
  :: atomic { holder != NONE -> d_step { wipe_all() };
       TR(waitingForStore, E_stand_down, stoodDown) }
#endif
  :: atomic { deadline_on -> d_step { wipe_all() };
       TR(waitingForStore, E_deadline_exceeded, failed) }
  :: atomic { lockst = LOCK_NO;  /* readable again after the backoff delay */
       TR(waitingForStore, E_store_retry, reconstructed);
       goto verify }
  :: atomic { RESTORE_MAY_ARRIVE -> restore_arrive();
       TR(waitingForStore, E_restore_shard_received, waitingForStore) }
  fi;
  DISPATCH;

threshold:
  atomic {
    skip;
    /* step 7.1: rebuild from the first untried T-subset of the source */
    d_step {
      held_mask(src * K, h); first_untried(src, h, m);
      cand_src = src;
      if
      :: m == NSUB ->          /* duplicates counted: fewer than T distinct ids */
         cand_mask = h; cand = GARB; cand_good = 0; tried[src] = tried[src] | 1
      :: else ->
         cand_mask = m; poly_of(src * K, m, p);
         cand = KEYOF(p); cand_good = (p == CUR);
         tried[src] = tried[src] | (1 << m)
      fi;
      cand_proven = 0;
      RT_ASSERT(cand != NONE && m != NSUB);
      h = 0; m = 0; p = 0
    };
    if
    :: store_kind == UNKNOWN -> if :: store_kind = RECORDS :: store_kind = EMPTY fi
    :: else
    fi;
    TR(thresholdMet, E_key_reconstructed, reconstructed);

    /* step 7.3 (spare shards, one off the candidate): check the other
       untried T-subsets in canonical order (n of them, each with a
       subset_tried record); a verdict on the store rather than the key
       (empty, unreadable) ends the search and leaves that subset untried */
    d_step {
      held_mask(cand_src * K, h);
      poly_of(cand_src * K, cand_mask, p); agreement(cand_src * K, cand_mask, p, h, a);
      best = NSUB; n = 0;
      if
      :: POP(h) > T && a < POP(h) ->
         m = 0;
         do
         :: m < NSUB ->
            if
            :: POP(m) == T && (m & h) == m && ((tried[cand_src] >> m) & 1) == 0 ->
               n++;
               if
               :: lockst == LOCK_YES || store_kind == EMPTY -> break
               :: else
               fi;
               tried[cand_src] = tried[cand_src] | (1 << m);
               poly_of(cand_src * K, m, p);
               if
               :: OPENS_STORE(KEYOF(p)) -> best = m; break
               :: else -> m++
               fi
            :: else -> m++
            fi
         :: else -> break
         od
      :: else
      fi;
      m = 0; p = 0; a = 0
    };
    do
    :: n > 0 -> n--; TR(reconstructed, E_subset_tried, reconstructed)
    :: else -> break
    od;
    if
    :: best != NSUB ->
       d_step {
         /* shards off the winning polynomial are wiped and removed */
         poly_of(cand_src * K, best, p);
         j2 = 0;
         do
         :: j2 < K ->
            if
            :: ((h >> j2) & 1) && !AGREES(cand_src * K, j2, p, best) ->
               sh[cand_src * K + j2] = NONE;
               if :: cand_src == KEEPERS -> ncoll-- :: else fi
            :: else
            fi;
            j2++
         :: else -> break
         od;
         cand_mask = best; cand = KEYOF(p); cand_good = (p == CUR);
         RT_ASSERT(HELDS(cand_src * K) >= T);
         j2 = 0; p = 0
       };
       TR(reconstructed, E_bad_shards_excluded, reconstructed)
    :: else
    fi;
    h = 0; best = 0;
    goto verify
  };

verify:
  atomic {
    /* step 7.2: the store's verdict on the candidate */
    if
    :: lockst == LOCK_MAYBE -> if :: lockst = LOCK_NO :: lockst = LOCK_YES fi
    :: else
    fi;
    d_step {
      held_mask(cand_src * K, h); poly_of(cand_src * K, cand_mask, p);
      agreement(cand_src * K, cand_mask, p, h, a);
      /* the truth, whatever the machine decides below */
      cand_proven = TRULY_OPENS(cand) ||
                    (store_kind == EMPTY && lockst != LOCK_YES && h == ALL && a == K);
      if
      :: lockst == LOCK_YES -> v = V_UNREADABLE
      :: lockst != LOCK_YES && store_kind == RECORDS -> v = (OPENS_STORE(cand) -> V_OPENS : V_FAILS)
#if defined(BUG_ACCEPT_UNVERIFIABLE)
      :: lockst != LOCK_YES && store_kind == EMPTY -> v = V_CONFIRMED
#else
      :: lockst != LOCK_YES && store_kind == EMPTY -> v = (h == ALL && a == K -> V_CONFIRMED : V_UNVERIF)
#endif
      fi;
      h = 0; p = 0; a = 0
    };
    if
    :: v == V_OPENS -> v = 0; passed = 1; TR(reconstructed, E_key_verified, verified)
    :: v == V_CONFIRMED -> v = 0;
       RT_ASSERT(HELDS(cand_src * K) == K);            /* A7.2.8 */
       passed = 1; TR(reconstructed, E_key_confirmed, verified)
    :: v == V_FAILS -> v = 0;
       d_step {
         cand = NONE; cand_mask = 0; cand_good = 0; cand_proven = 0;
         if :: cand_src == RESTORE -> wipe_restore() :: else fi
       };
       RT_ASSERT(cand == NONE && installer != BY_RECOVERY);   /* A7.2.1, A7.2.3 */
       TR(reconstructed, E_key_verification_failed, collecting);
       goto settle
    :: v == V_UNVERIF -> v = 0;
       d_step {
         cand = NONE; cand_mask = 0; cand_good = 0; cand_proven = 0;
         /* a full restore set that does not agree can never be confirmed */
         if :: cand_src == RESTORE && RHELD == K -> wipe_restore() :: else fi
       };
       RT_ASSERT(cand == NONE);                        /* A7.2.9 */
       TR(reconstructed, E_key_unverifiable, collecting);
       goto settle
    :: v == V_UNREADABLE -> v = 0;
       RT_ASSERT(cand != NONE);                        /* A7.2.7 */
       TR(reconstructed, E_store_unreadable, waitingForStore)
    fi
  };
  DISPATCH;

install:
  atomic {
    /* every held keeper shard off the key is named */
    j2 = 0;
    do
    :: j2 < K && sh[j2] != NONE && sh[j2] != cand ->
       j2++; TR(verified, E_shard_disagrees, verified)
    :: j2 < K && !(sh[j2] != NONE && sh[j2] != cand) -> j2++
    :: else -> break
    od;
    j2 = 0;
    /* step 8: install, compare-and-set against an empty holder */
#if defined(BUG_NO_STANDDOWN) || defined(BUG_NO_CAS)
    holder = cand; installer = BY_RECOVERY; NOTE_INSTALL;
    holder_proven = cand_proven;
    TR(verified, E_root_key_set, keyInstalled);
#else
    if
    :: holder == NONE ->
       holder = cand; installer = BY_RECOVERY; NOTE_INSTALL;
       holder_proven = cand_proven;
       TR(verified, E_root_key_set, keyInstalled)
    :: else ->
       d_step { wipe_all() }; TR(verified, E_stand_down, stoodDown)
    fi;
#endif
    if
    :: rstate == keyInstalled ->
       RT_ASSERT(holder != NONE && holder == cand);
       /* step 9: load and decrypt every row */
       if
#ifndef LIVENESS
       :: holder = NONE; installer = BY_NOBODY; holder_proven = 0;
          d_step { wipe_all() };
          TR(keyInstalled, E_state_initialization_failed, failed)
#endif
       :: TR(keyInstalled, E_state_initialized, stateInitialized);
          /* step 10: drain the answers still outstanding (each checked
             against the key, never kept), then zero every buffer */
          j2 = 0;
          do
          :: j2 < K && ((pending >> j2) & 1) ->
             pending = pending & ~(1 << j2); j2++;
             TR(stateInitialized, E_late_answer, stateInitialized)
          :: j2 < K && !((pending >> j2) & 1) -> j2++
          :: else -> break
          od;
          j2 = 0;
          RT_ASSERT(pending == 0);                     /* A10.3 */
#ifndef BUG_DISTRIBUTE_BEFORE_WIPE
          d_step { wipe_all() };
#endif
          RT_ASSERT(WIPED);
          TR(stateInitialized, E_shards_wiped, shardsWiped);
          /* step 11 */
          RT_ASSERT(WIPED && holder != NONE && passed);   /* A11.3 */
          TR(shardsWiped, E_distribution_started, distributing)
       fi
    :: else
    fi
  };
#ifdef BUG_DISTRIBUTE_BEFORE_WIPE
  if
  :: rstate == distributing -> d_step { wipe_all() }
  :: else
  fi;
#endif
  if
  :: rstate == failed -> goto the_end
  :: else
  fi;

stood_down:
dist_loop:
  /* steps 11-12: periodic distribution (also the other writer's, after a
     stand-down); Nexus may crash here and start over */
end_dist:
  do
  :: atomic { rstate == distributing ->
       RT_ASSERT(holder != NONE && pending == 0);
       TR(distributing, E_operational, operational) }
  :: atomic {
       holder != NONE && NEEDS_DIST ->
       if :: !holder_proven -> wrote_unproven = 1 :: else fi;
       if
       :: !kdead[0] && kshard[0] != holder -> kshard[0] = holder
       :: !kdead[1] && kshard[1] != holder -> kshard[1] = holder
       :: !kdead[2] && kshard[2] != holder -> kshard[2] = holder
#ifdef CONF_4_2
       :: !kdead[3] && kshard[3] != holder -> kshard[3] = holder
#endif
       fi }
  :: atomic { nrestarts > 0 ->
       nrestarts--; holder = NONE; installer = BY_NOBODY; ext_installed = 0;
       holder_proven = 0; wipe_all();
       files_mode = 0; rs_left = 0; rrepeats = 0;   /* the new process recovers from keepers */
       rstate = start; lastev = E_none };
     goto incarnation
  od;

the_end:
  skip
}

/* the world: a keeper restarts and loses its shard; a stale keeper gets the
   current shard between rounds */
proctype world() {
end_w:
  do
  :: atomic { krestarts > 0 ->
       krestarts--;
       if
       :: kshard[0] != NONE -> kshard[0] = NONE
       :: kshard[1] != NONE -> kshard[1] = NONE
       :: kshard[2] != NONE -> kshard[2] = NONE
#ifdef CONF_4_2
       :: kshard[3] != NONE -> kshard[3] = NONE
#endif
       :: else -> skip
       fi }
  :: atomic { kfixes > 0 && rstate == waitingForRetry && HAS_STALE ->
       kfixes--;
       if
       :: !kdead[0] && kshard[0] == STALE -> kshard[0] = CUR
       :: !kdead[1] && kshard[1] == STALE -> kshard[1] = CUR
       :: !kdead[2] && kshard[2] == STALE -> kshard[2] = CUR
#ifdef CONF_4_2
       :: !kdead[3] && kshard[3] == STALE -> kshard[3] = CUR
#endif
       fi }
  od
}

/* a writer of the holder outside this machine (once, at any moment while
   Nexus runs); it installs only into an empty holder, as step 8 does */
proctype outsider() {
end_out:
  atomic {
    rstate != start && rstate != failed ->
    if
    :: holder == NONE ->
       holder = CUR; installer = BY_OUTSIDE; ext_installed = 1; holder_proven = 1
    :: else -> skip
    fi
  }
}

/* the safety properties, checked in every reachable state */
active proctype monitor() {
end_mon:
  atomic {
    if
    :: !S1 -> printf("PROPERTY VIOLATED: S1 install-source\n"); assert(S1)
    :: !S2 -> printf("PROPERTY VIOLATED: S2 no-stale-key\n"); assert(S2)
    :: !S3 -> printf("PROPERTY VIOLATED: S3 outside-install-wins\n"); assert(S3)
    :: !S4 -> printf("PROPERTY VIOLATED: S4 wipe-before-distribution\n"); assert(S4)
    :: !S5 -> printf("PROPERTY VIOLATED: S5 distinct-threshold\n"); assert(S5)
    :: !S6 -> printf("PROPERTY VIOLATED: S6 no-unproven-distribution\n"); assert(S6)
    fi
  }
}

init {
  byte i;
  atomic {
    /* each keeper: current shard, stale shard, empty, or down for good */
    i = 0;
    do
    :: i < K ->
       if
       :: kshard[i] = CUR
       :: kshard[i] = STALE
       :: kshard[i] = NONE
       :: kshard[i] = NONE; kdead[i] = 1
       fi;
       i++
    :: else -> break
    od;
    i = 0;
    /* the operator: no restore, or the route fed with current or stale
       shards, or (safety runs) restore files only.  While the operator
       restores, the keepers' faults are off: the restore is checked against
       every initial keeper world, not against every fault on top of it. */
#if !(defined(LIVENESS) && defined(CONF_4_2))   /* restore liveness: 3 keepers */
    if
    :: skip
    :: rgen = CUR
    :: rgen = STALE
    fi;
#endif
    if
    :: rgen != NONE ->
       rs_left = ALL; net_faults = 0; krestarts = 0; kfixes = 0;
#ifndef LIVENESS
       if :: files_mode = 1; rrepeats = 0 :: skip fi
#endif
    :: else
    fi;
#ifndef LIVENESS
    deadline_on = 1;
#endif
    run nexus(); run world(); run outsider()
  }
}

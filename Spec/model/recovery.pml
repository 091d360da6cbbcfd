/*
 * recovery.pml -- Promela model of SPIKE Nexus root-key recovery
 * (Spec/recovery.md, steps 1-12; Spec/recovery-machine.json is the table).
 *
 * One Nexus, K keepers, an operator who may restore the key from Pilot
 * shards at any moment, keepers that are dead, slow, restarted (empty) or
 * holding a shard of an older root key, bounded network faults and
 * malformed answers, and a Nexus that may crash and restart while it
 * distributes shards.
 *
 * Abstraction: a key is named by its generation (CUR = the key the backing
 * store is encrypted under, STALE = one older key); a shard is (keeper id,
 * generation).  T shards of one generation rebuild that generation's key;
 * T shards of mixed generations rebuild a key that belongs to nobody
 * (GARB); such a set fixes a polynomial that agrees only with its own
 * members.  The backing store holds at least one record, so the step 7.2
 * check passes exactly for CUR (LIMIT_EMPTY_STORE shows what an empty
 * store costs).
 *
 * Every recovery transition is written TR(from, E_event, to) with the
 * state and event names of Spec/recovery-machine.json;
 * tools/check-spec-table compares the two.
 *
 * Switches (cpp -D):
 *   CONF_4_2             4 keepers, threshold 2 (default: 3 keepers, threshold 2)
 *   LIVENESS             no deadline, valid configuration, intact rows (the
 *                        hypothesis of the progress property)
 *   NO_RUNTIME_ASSERTS   drop the assertions the code itself checks, so that
 *                        only the properties (monitor, LTL) can catch a bug
 *   BUG_NO_VERIFY        accept a candidate key without step 7.2
 *   BUG_NO_STANDDOWN     no stand-down anywhere; step 8 overwrites the holder
 *   BUG_NO_CAS           stand-down at the top of each round only; step 8 is a
 *                        plain store instead of compare-and-set
 *   BUG_DISTRIBUTE_BEFORE_WIPE  start distribution, then wipe the shards
 *   BUG_COUNT_DUPLICATES ask every keeper every round and count every 200
 *                        toward the threshold, duplicates included
 *   BUG_NO_RETRY         only the first round sends requests (a liveness bug)
 *   LIMIT_EMPTY_STORE    the backing store is empty: 7.2 has nothing to check
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
#define NET_FAULTS      1      /* a live keeper unreachable / too slow / TLS refused */
#define BAD_ANSWERS     1      /* a live keeper answers garbage */
#define KEEPER_RESTARTS 1      /* a keeper restarts and loses its shard */
#define NEXUS_RESTARTS  1      /* Nexus crashes while distributing */

/* key and shard generations */
#define NONE  0                /* zeroed buffer / no shard / no key */
#define CUR   1
#define STALE 2
#define GARB  3                /* key of nobody; shards of it only in bug runs */
#define MIXED 4                /* polynomial of a mixed set (never stored) */

#define BY_NOBODY   0
#define BY_RECOVERY 1
#define BY_OPERATOR 2

mtype = { start, recovering, configured, collecting, waitingForRetry,
          thresholdMet, reconstructed, verified, keyInstalled,
          stateInitialized, shardsWiped, distributing, operational,
          stoodDown, failed };

mtype = { E_none, E_recovery_begun, E_keepers_configured,
          E_configuration_rejected, E_round_started, E_stand_down,
          E_shard_received, E_no_shard, E_shard_rejected,
          E_keeper_unreachable, E_round_exhausted, E_threshold_met,
          E_key_reconstructed, E_bad_shards_excluded,
          E_key_verification_failed, E_key_verified, E_root_key_set,
          E_state_initialized, E_state_initialization_failed,
          E_shards_wiped, E_distribution_started, E_operational,
          E_deadline_exceeded };

#define TR(f, e, t)  assert(rstate == f); rstate = t; lastev = e

#ifdef NO_RUNTIME_ASSERTS
#define RT_ASSERT(x) skip
#else
#define RT_ASSERT(x) assert(x)
#endif

/* ---- the world ---- */
mtype rstate = start;          /* the recovery's state (table state names) */
hidden mtype lastev = E_none;        /* the last transition's event (for trails) */

byte kshard[K];                /* what keeper i holds */
bit  kdead[K];                 /* keeper i is down for good */

byte holder = NONE;            /* Nexus's root-key holder */
byte installer = BY_NOBODY;
bit  op_restored;              /* this Nexus incarnation: key came from a restore */

/* ---- recovery memory (all of it is lost when Nexus restarts) ---- */
byte coll[K];                  /* shard buffers by id; NONE = zeroed */
byte ncoll;                    /* answers counted toward the threshold */
int  tried;                    /* bit m set: T-subset m already rebuilt once */
byte pending;                  /* keepers whose answer this round is outstanding */
byte cand = NONE;              /* candidate key buffer */
byte cand_mask;                /* ids the candidate was rebuilt from */
bit  cand_good;                /* ghost: rebuilt from T distinct CUR shards */
bit  cand_checked;             /* ghost: passed the real step 7.2 check */
bit  inst_ok;                  /* ghost: the installed key had both */

/* ---- fault budgets and one-time choices ---- */
byte net_faults = NET_FAULTS;
byte bad_answers = BAD_ANSWERS;
byte krestarts = KEEPER_RESTARTS;
byte nrestarts = NEXUS_RESTARTS;
bit  config_ok = 1;
bit  deadline_on;
bit  corrupt_row;

/* ---- derived expressions (for the monitor and the LTL formulas) ---- */
#ifdef CONF_4_2
#define HELD  ((coll[0] != NONE) + (coll[1] != NONE) + (coll[2] != NONE) + (coll[3] != NONE))
#define NCUR  ((kshard[0] == CUR && !kdead[0]) + (kshard[1] == CUR && !kdead[1]) + \
               (kshard[2] == CUR && !kdead[2]) + (kshard[3] == CUR && !kdead[3]))
#define COLL_ZERO (coll[0] == NONE && coll[1] == NONE && coll[2] == NONE && coll[3] == NONE)
#else
#define HELD  ((coll[0] != NONE) + (coll[1] != NONE) + (coll[2] != NONE))
#define NCUR  ((kshard[0] == CUR && !kdead[0]) + (kshard[1] == CUR && !kdead[1]) + \
               (kshard[2] == CUR && !kdead[2]))
#define COLL_ZERO (coll[0] == NONE && coll[1] == NONE && coll[2] == NONE)
#endif
#define WIPED (COLL_ZERO && cand == NONE)
#ifdef CONF_4_2
#define NEEDS_DIST ((!kdead[0] && kshard[0] != holder) || (!kdead[1] && kshard[1] != holder) || \
                    (!kdead[2] && kshard[2] != holder) || (!kdead[3] && kshard[3] != holder))
#else
#define NEEDS_DIST ((!kdead[0] && kshard[0] != holder) || (!kdead[1] && kshard[1] != holder) || \
                    (!kdead[2] && kshard[2] != holder))
#endif

/* ---- the safety properties ---- */
/* S1: recovery installs a key only if it was rebuilt from T distinct shards
 *     of the current key and passed the step 7.2 check */
#define S1 (installer != BY_RECOVERY || inst_ok)
/* S2: no key but the current one is ever installed (a stale shard never
 *     leads to an installed key) */
#define S2 (holder == NONE || holder == CUR)
/* S3: after an operator restore, recovery never overwrites the key */
#define S3 (!op_restored || installer == BY_OPERATOR)
/* S4: every shard buffer and the candidate are wiped before distribution
 *     starts (and on stand-down, when the restore path distributes) */
#define S4 (!(rstate == distributing || rstate == operational || rstate == stoodDown) || WIPED)
/* S5: the threshold is met only with T distinct share ids */
#define S5 (rstate != thresholdMet || HELD >= T)

/* ---- the liveness properties (checked with weak fairness, -DLIVENESS) ---- */
#define enough (NCUR >= T)
#define done   (rstate == operational || rstate == stoodDown)
/* L1: if from some point on at least T live keepers hold current shards,
 *     Nexus ends up operational (by recovery or by a restore) and stays so */
ltl progress { (<>[] enough) -> (<>[] done) }
/* L2: after an operator restore, recovery stands down */
ltl stands_down { [] (op_restored -> <> (rstate == stoodDown)) }

/* ---- helpers (deterministic; used inside d_step) ---- */
inline popcount(x, r) {
  r = 0; j = 0;
  do
  :: j < K -> r = r + ((x >> j) & 1); j++
  :: else -> break
  od;
  j = 0
}

inline held_mask(h) {
  h = 0; j = 0;
  do
  :: j < K -> if :: coll[j] != NONE -> h = h | (1 << j) :: else fi; j++
  :: else -> break
  od;
  j = 0
}

/* the polynomial fixed by the shards in x: their common generation, or MIXED */
inline poly_of(x, p) {
  p = NONE; j = 0;
  do
  :: j < K ->
     if
     :: (x >> j) & 1 ->
        if
        :: p == NONE -> p = coll[j]
        :: p != NONE && p != coll[j] -> p = MIXED
        :: else
        fi
     :: else
     fi; j++
  :: else -> break
  od;
  j = 0
}

/* does held shard i lie on polynomial p (fixed by x)? */
#define KEYOF(p) (p == MIXED -> GARB : p)

/* the step 7.2 check: does a key open a record of the backing store? */
#if defined(BUG_NO_VERIFY) || defined(LIMIT_EMPTY_STORE)
#define OPENS_STORE(k) 1
#else
#define OPENS_STORE(k) (k == CUR)
#endif
#ifdef BUG_NO_VERIFY
#define CHECKED(ok) 0          /* nothing was checked */
#else
#define CHECKED(ok) (ok)
#endif

#define AGREES(i, p, x) ((p == MIXED && ((x >> i) & 1)) || (p != MIXED && coll[i] == p))

inline agreement(x, p, h, a) {
  a = 0; j = 0;
  do
  :: j < K -> if :: ((h >> j) & 1) && AGREES(j, p, x) -> a++ :: else fi; j++
  :: else -> break
  od;
  j = 0
}

/* smallest untried T-subset of h, or NSUB */
inline first_untried(h, m) {
  m = 0;
  do
  :: m < NSUB ->
     popcount(m, c);
     if
     :: c == T && (m & h) == m && ((tried >> m) & 1) == 0 -> break
     :: else -> m++
     fi
  :: else -> break
  od;
  c = 0
}

inline wipe_all() {
  j = 0;
  do
  :: j < K -> coll[j] = NONE; j++
  :: else -> break
  od;
  j = 0; ncoll = 0; cand = NONE; cand_mask = 0; cand_good = 0;
  cand_checked = 0; tried = 0; pending = 0
}

/* ---- Nexus ---- */
proctype nexus() {
  byte i, j, j2, m, c, h, n, p, a, best;
  bit ok;
#ifdef BUG_NO_RETRY
  bit asked;
#endif

incarnation:
  skip;
  /* step 1: a fresh process, no root key */
  d_step {
    rstate = start; lastev = E_none;
#ifdef BUG_NO_RETRY
    asked = 0;
#endif
    RT_ASSERT(holder == NONE && WIPED)
  }
  /* step 2 */
  atomic { TR(start, E_recovery_begun, recovering) }
  /* step 3 */
  if
  :: atomic { config_ok -> TR(recovering, E_keepers_configured, configured) }
  :: atomic { !config_ok -> TR(recovering, E_configuration_rejected, failed) }; goto the_end
  fi;
  atomic { TR(configured, E_round_started, collecting) }

round_top:
  skip;
  /* step 4.0: the stand-down check at the top of every round */
  if
#ifndef BUG_NO_STANDDOWN
  :: atomic { holder != NONE -> wipe_all(); TR(collecting, E_stand_down, stoodDown) };
     goto stood_down
#endif
  :: else
  fi;
  /* step 4.1-4.3: ask every keeper whose shard is not held, all at once */
  d_step {
    held_mask(h);
#if defined(BUG_COUNT_DUPLICATES)
    pending = ALL;
#elif defined(BUG_NO_RETRY)
    pending = (asked -> 0 : ALL & ~h); asked = 1;
#else
    pending = ALL & ~h;
#endif
    h = 0
  }

collect:
  skip;
  /* steps 4.4 / 5 / 6: the threshold is checked after every new shard */
  d_step {
    held_mask(h); first_untried(h, m); ok = (m != NSUB);
#ifdef BUG_COUNT_DUPLICATES
    ok = ok || (ncoll >= T && tried == 0);
#endif
    h = 0; m = 0
  }
  if
  :: ok -> ok = 0; goto threshold
  :: else
  fi;
  if
  :: pending != 0 ->
     /* one outstanding answer arrives -- any of them: the requests run
        concurrently and each has its own deadline */
     atomic {
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
          net_faults--; TR(collecting, E_keeper_unreachable, collecting)
       :: !kdead[i] && bad_answers > 0 ->
          bad_answers--; TR(collecting, E_shard_rejected, collecting)
       :: !kdead[i] && kshard[i] == NONE -> TR(collecting, E_no_shard, collecting)
       :: !kdead[i] && kshard[i] != NONE ->
          if
          :: coll[i] == NONE -> coll[i] = kshard[i]; ncoll++
          :: else -> ncoll++       /* only reachable with BUG_COUNT_DUPLICATES */
          fi;
          RT_ASSERT(coll[i] != NONE && ncoll == HELD && (tried != 0 || HELD <= T));
          TR(collecting, E_shard_received, collecting)
       fi;
       i = 0
     };
     goto collect
  :: pending == 0 ->
     atomic { TR(collecting, E_round_exhausted, waitingForRetry) };
     goto waiting
  :: deadline_on ->
     atomic { wipe_all(); TR(collecting, E_deadline_exceeded, failed) };
     goto the_end
  fi;

waiting:
  /* step 5: back off, then a new round; collected shards are kept */
  if
#ifndef BUG_NO_STANDDOWN
  :: atomic { holder != NONE -> wipe_all(); TR(waitingForRetry, E_stand_down, stoodDown) };
     goto stood_down
#endif
  :: atomic { deadline_on -> wipe_all(); TR(waitingForRetry, E_deadline_exceeded, failed) };
     goto the_end
  :: atomic { TR(waitingForRetry, E_round_started, collecting) };
     goto round_top
  fi;

threshold:
  /* step 6 */
  atomic {
    RT_ASSERT(HELD >= T);
    TR(collecting, E_threshold_met, thresholdMet)
  }
  /* step 7.1: rebuild from the first T-subset not tried yet */
  d_step {
    held_mask(h); first_untried(h, m);
    if
    :: m == NSUB ->            /* duplicates counted: fewer than T distinct ids */
       cand_mask = h; cand = GARB; cand_good = 0; tried = tried | 1
    :: else ->
       cand_mask = m; poly_of(m, p);
       cand = KEYOF(p); cand_good = (p == CUR);
       tried = tried | (1 << m)
    fi;
    cand_checked = 0;
    RT_ASSERT(cand != NONE && m != NSUB);
    h = 0; m = 0; p = 0
  }
  atomic { TR(thresholdMet, E_key_reconstructed, reconstructed) }
  /* step 7.3 (only with spare shards): if a held shard disagrees with the
     candidate, look for the T-subset whose key opens the store; the shards
     off its polynomial are wiped and their keepers named */
  d_step {
    held_mask(h); popcount(h, n);
    poly_of(cand_mask, p); agreement(cand_mask, p, h, a);
    if
    :: n > T && a < n ->
       best = NSUB; m = 0;
       do
       :: m < NSUB ->
          popcount(m, c);
          if
          :: c == T && (m & h) == m && (((tried >> m) & 1) == 0 || m == cand_mask) ->
             tried = tried | (1 << m);
             poly_of(m, p);
             if
             :: OPENS_STORE(KEYOF(p)) -> best = m; break
             :: else -> m++
             fi
          :: else -> m++
          fi
       :: else -> break
       od;
       if
       :: best != NSUB ->
          poly_of(best, p);
          j2 = 0;
          do
          :: j2 < K ->
             if
             :: ((h >> j2) & 1) && !AGREES(j2, p, best) -> coll[j2] = NONE; ncoll--
             :: else
             fi;
             j2++
          :: else -> break
          od;
          cand_mask = best; cand = KEYOF(p); cand_good = (p == CUR);
          cand_checked = CHECKED(1);
          ok = 1
       :: else
       fi
    :: else
    fi;
    j2 = 0; m = 0; c = 0; h = 0; n = 0; p = 0; a = 0; best = 0
  }
  if
  :: ok -> atomic { RT_ASSERT(HELD >= T); ok = 0;
                    TR(reconstructed, E_bad_shards_excluded, reconstructed) }
  :: else
  fi;
  /* step 7.2: the candidate must open a record of the backing store */
  d_step {
    ok = OPENS_STORE(cand);
    cand_checked = CHECKED(ok);
    if
    :: ok -> pending = 0       /* outstanding requests are cancelled */
    :: else -> cand = NONE; cand_mask = 0; cand_good = 0; cand_checked = 0
    fi
  }
  if
  :: ok -> atomic { ok = 0; TR(reconstructed, E_key_verified, verified) }
  :: else ->
     atomic { RT_ASSERT(cand == NONE);
              TR(reconstructed, E_key_verification_failed, collecting) };
     goto collect
  fi;

  /* step 8: install, compare-and-set against an empty holder */
  atomic {
#if defined(BUG_NO_STANDDOWN) || defined(BUG_NO_CAS)
    holder = cand; installer = BY_RECOVERY; inst_ok = cand_good && cand_checked;
    TR(verified, E_root_key_set, keyInstalled)
#else
    if
    :: holder == NONE ->
       holder = cand; installer = BY_RECOVERY; inst_ok = cand_good && cand_checked;
       TR(verified, E_root_key_set, keyInstalled)
    :: else ->
       wipe_all(); TR(verified, E_stand_down, stoodDown)
    fi
#endif
  }
  if
  :: rstate == stoodDown -> goto stood_down
  :: else -> RT_ASSERT(holder != NONE && holder == cand)
  fi;

  /* step 9: load and decrypt every row */
  if
  :: atomic { corrupt_row ->
       holder = NONE; installer = BY_NOBODY; wipe_all();
       TR(keyInstalled, E_state_initialization_failed, failed) };
     goto the_end
  :: atomic { !corrupt_row -> TR(keyInstalled, E_state_initialized, stateInitialized) }
  fi;

  /* step 10: zero every shard buffer and the candidate copy */
  atomic {
#ifndef BUG_DISTRIBUTE_BEFORE_WIPE
    wipe_all();
#endif
    RT_ASSERT(WIPED);
    TR(stateInitialized, E_shards_wiped, shardsWiped)
  }
  /* step 11 */
  atomic {
    RT_ASSERT(WIPED && holder != NONE);
    TR(shardsWiped, E_distribution_started, distributing)
  }
#ifdef BUG_DISTRIBUTE_BEFORE_WIPE
  atomic { wipe_all() }
#endif

stood_down:
dist_loop:
  /* steps 11-12: periodic distribution (also the restore path's, after a
     stand-down); Nexus may crash here and start over */
end_dist:
  do
  :: atomic { rstate == distributing ->
       RT_ASSERT(holder != NONE && pending == 0);
       TR(distributing, E_operational, operational) }
  :: atomic {
       holder != NONE && NEEDS_DIST ->
       if
       :: !kdead[0] && kshard[0] != holder -> kshard[0] = holder
       :: !kdead[1] && kshard[1] != holder -> kshard[1] = holder
       :: !kdead[2] && kshard[2] != holder -> kshard[2] = holder
#ifdef CONF_4_2
       :: !kdead[3] && kshard[3] != holder -> kshard[3] = holder
#endif
       fi }
  :: atomic { nrestarts > 0 ->
       nrestarts--; holder = NONE; installer = BY_NOBODY; op_restored = 0;
       inst_ok = 0; wipe_all(); rstate = start; lastev = E_none };
     goto incarnation
  od;

the_end:
  skip
}

/* a keeper restarts and loses its shard */
proctype keeper_faults() {
end_kf:
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
  od
}

/* the operator restores the key from Pilot's shards (once), at any moment
   while Nexus runs; it installs only into an empty holder, as step 8 does */
proctype operator() {
end_op:
  atomic {
    rstate != start && rstate != failed ->
    if
    :: holder == NONE -> holder = CUR; installer = BY_OPERATOR; op_restored = 1
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
    :: !S3 -> printf("PROPERTY VIOLATED: S3 restore-wins\n"); assert(S3)
    :: !S4 -> printf("PROPERTY VIOLATED: S4 wipe-before-distribution\n"); assert(S4)
    :: !S5 -> printf("PROPERTY VIOLATED: S5 distinct-threshold\n"); assert(S5)
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
#ifndef LIVENESS
    if :: config_ok = 1 :: config_ok = 0 fi;
    if :: deadline_on = 0 :: deadline_on = 1 fi;
    if :: corrupt_row = 0 :: corrupt_row = 1 fi;
#endif
    run nexus(); run keeper_faults(); run operator()
  }
}

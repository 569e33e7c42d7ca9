// Plain Kotlin (no android.*): tested on the JVM by scripts/test-kotlin.sh.
package org.roam.vpn.glue

/** Something scheduled that can be called off. */
fun interface Cancellable {
    fun cancel()
}

/** Runs a task after a delay (Android: a Handler; tests: a manual clock). */
fun interface Scheduler {
    fun schedule(delayMillis: Long, task: Runnable): Cancellable
}

/**
 * Passes on the last value submitted once [delayMillis] passed without a newer one, and only
 * when it differs from the last value passed on. A phone switching Wi-Fi to cellular reports
 * lost, available, capabilities and link properties in a burst; the core wants one change.
 */
class Debouncer<T>(
    private val delayMillis: Long,
    private val scheduler: Scheduler,
    private val action: (T) -> Unit,
) {
    private val lock = Any()
    private var pending: Cancellable? = null
    private var generation = 0L
    private var delivered: Any? = NOTHING

    fun submit(value: T) {
        val mine: Long
        synchronized(lock) {
            pending?.cancel()
            generation += 1
            mine = generation
        }
        val task = scheduler.schedule(delayMillis) {
            val deliver = synchronized(lock) {
                if (mine != generation || delivered == value) {
                    false
                } else {
                    delivered = value
                    true
                }
            }
            // The action runs outside the lock: it may submit again.
            if (deliver) action(value)
        }
        synchronized(lock) {
            if (mine == generation) pending = task else task.cancel()
        }
    }

    /** Drops a pending value and forgets what was delivered (the next value always passes). */
    fun reset() {
        synchronized(lock) {
            pending?.cancel()
            pending = null
            generation += 1
            delivered = NOTHING
        }
    }

    private companion object {
        val NOTHING = Any()
    }
}

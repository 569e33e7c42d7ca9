// A minimal test runner for the JVM tests (no JUnit on these machines): runs every public
// no-argument method of the given classes, each with a time limit, prints each result and
// then "N passed, N failed"; exits 1 if anything failed.
package org.roam.test

import java.lang.reflect.InvocationTargetException
import java.lang.reflect.Modifier
import kotlin.system.exitProcess

const val TEST_TIME_LIMIT_MS = 60_000L

fun main(args: Array<String>) {
    var passed = 0
    var failed = 0
    for (className in args) {
        val cls = Class.forName(className)
        val methods = cls.declaredMethods
            .filter { Modifier.isPublic(it.modifiers) && it.parameterCount == 0 && !Modifier.isStatic(it.modifiers) }
            .filter { it.name.startsWith("test") }
            .sortedBy { it.name }
        for (m in methods) {
            val name = "${cls.simpleName}.${m.name}"
            var error: Throwable? = null
            val t = Thread {
                try {
                    m.invoke(cls.getDeclaredConstructor().newInstance())
                } catch (e: InvocationTargetException) {
                    error = e.targetException
                } catch (e: Throwable) {
                    error = e
                }
            }
            t.isDaemon = true
            t.start()
            t.join(TEST_TIME_LIMIT_MS)
            if (t.isAlive) error = AssertionError("timed out after $TEST_TIME_LIMIT_MS ms")
            val e = error
            if (e == null) {
                passed++
                println("PASS $name")
            } else {
                failed++
                println("FAIL $name: $e")
                e.printStackTrace(System.out)
            }
        }
    }
    println("$passed passed, $failed failed")
    exitProcess(if (failed == 0 && passed > 0) 0 else 1)
}

// The Roam library module: RoamVpnService and its glue, the UniFFI Kotlin bindings
// (generated into build/, never committed) and the native libraries from cargo-ndk.
plugins {
    id("com.android.library")
    id("org.jetbrains.kotlin.android")
}

val repoRoot = rootDir.parentFile
val generatedKotlin = layout.buildDirectory.dir("generated/uniffi/kotlin")
val jniLibsDir = layout.buildDirectory.dir("generated/jniLibs")

android {
    namespace = "org.roam.vpn"
    compileSdk = 35
    defaultConfig {
        minSdk = 26
        consumerProguardFiles("consumer-rules.pro")
    }
    sourceSets["main"].kotlin.srcDir(generatedKotlin)
    sourceSets["main"].jniLibs.srcDir(jniLibsDir)
    compileOptions {
        sourceCompatibility = JavaVersion.VERSION_17
        targetCompatibility = JavaVersion.VERSION_17
    }
    kotlinOptions { jvmTarget = "17" }
}

dependencies {
    // The @aar flavour carries JNA's native dispatch library for every Android ABI.
    implementation("net.java.dev.jna:jna:5.13.0@aar")
    implementation("androidx.core:core-ktx:1.13.1")
}

// Generates the Kotlin bindings from the host build of roam-ffi (library mode), then
// builds the Android .so files with cargo-ndk.
val generateBindings by tasks.registering(Exec::class) {
    workingDir = repoRoot
    commandLine("scripts/gen-bindings.sh", layout.buildDirectory.dir("uniffi").get().asFile.absolutePath)
    doLast {
        copy {
            from(layout.buildDirectory.dir("uniffi/kotlin"))
            into(generatedKotlin)
        }
    }
}
val buildNative by tasks.registering(Exec::class) {
    workingDir = repoRoot
    commandLine("scripts/build-android.sh", jniLibsDir.get().asFile.absolutePath)
}
tasks.named("preBuild") { dependsOn(generateBindings, buildNative) }

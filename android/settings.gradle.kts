// Roam's Android build: the `roam` library module (VpnService shell + generated bindings)
// and a minimal `sample` app. Needs the Android SDK and NDK; see android/README.md.
pluginManagement {
    repositories {
        google()
        mavenCentral()
        gradlePluginPortal()
    }
}
dependencyResolutionManagement {
    repositories {
        google()
        mavenCentral()
    }
}
rootProject.name = "roam-android"
include(":roam", ":sample")

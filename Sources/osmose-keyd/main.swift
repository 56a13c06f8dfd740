import KeyService

await KeyDaemon.main()

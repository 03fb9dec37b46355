from ar_sync.cli import main

main()

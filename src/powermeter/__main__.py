from powermeter.cli import main

main()

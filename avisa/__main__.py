from avisa.cli import main

main()

from alitok.cli import main

raise SystemExit(main())

from barometer import create_app

app = create_app()
